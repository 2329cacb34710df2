// Does OpenBLAS compute a row of C = A·Bᵀ the same way whatever the call's shape? For K in 16..2048 and
// N in 8..576, M rows (at offsets 0 and 37) against the same rows of a 1024-row product; prints the cases
// that differ. bench/results/batch-invariant-gemm-20261130.txt has its output per OpenBLAS core type:
//   gcc -O2 bench/blas_row_invariance.c $(pkg-config --cflags --libs openblas) -o /tmp/probe
//   OPENBLAS_CORETYPE=Haswell OPENBLAS_NUM_THREADS=1 /tmp/probe
#include <cblas.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
char* openblas_get_corename(void);
int main(int argc,char**argv){ int MR=1024; int Ks[]={16,32,48,64,96,128,576,1536,2048}; int Ns[]={8,16,24,32,64,100,256,576};
 int Ms[]={16,24,32,48,63,64,65,80,100,128,200,320,333,512};
 printf("core %s\n", openblas_get_corename());
 int bad=0, total=0;
 for(int a=0;a<9;a++) for(int b=0;b<8;b++){ int K=Ks[a],N=Ns[b];
  float *A=malloc((size_t)MR*K*4),*B=malloc((size_t)K*N*4),*C=malloc((size_t)MR*N*4),*D=malloc((size_t)MR*N*4);
  srand(K*131+N); for(int i=0;i<MR*K;i++)A[i]=rand()/(float)RAND_MAX-0.5f; for(int i=0;i<K*N;i++)B[i]=rand()/(float)RAND_MAX-0.5f;
  cblas_sgemm(CblasRowMajor,CblasNoTrans,CblasTrans,MR,N,K,1,A,K,B,K,0,D,N);
  for(int m=0;m<14;m++){int M=Ms[m]; for(int off=0; off<2; off++){ int o=off*37; total++;
    cblas_sgemm(CblasRowMajor,CblasNoTrans,CblasTrans,M,N,K,1,A+o*K,K,B,K,0,C,N);
    if(memcmp(C,D+o*N,(size_t)M*N*4)){bad++; printf("K=%d N=%d M=%d off=%d differs\n",K,N,M,o);} }}
  free(A);free(B);free(C);free(D);}
 printf("%d of %d differ\n",bad,total); }
