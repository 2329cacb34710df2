// zt_gemm_nt (Sources/CKernels/GEMM.c) against OpenBLAS's sgemm, one thread, on the shapes of SmolLM2-135M's
// linears (best of 5, GFLOP/s, max |Δ|). bench/results/batch-invariant-gemm-20261130.txt has its output:
//   clang -O2 -ISources/CKernels/include -c Sources/CKernels/GEMM.c -o /tmp/gemm.o
//   gcc -O2 bench/gemm_kernel.c /tmp/gemm.o $(pkg-config --cflags --libs openblas) -o /tmp/gemm && OPENBLAS_NUM_THREADS=1 /tmp/gemm
#include <cblas.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <stddef.h>
void zt_gemm_nt(const float *x, const float *w, float *out, ptrdiff_t rows, ptrdiff_t columns, ptrdiff_t k, ptrdiff_t ldo, int accumulate);
double now(){struct timespec t; clock_gettime(CLOCK_MONOTONIC,&t); return t.tv_sec+t.tv_nsec*1e-9;}
int main(){ int shapes[][3]={{640,576,576},{640,1536,576},{640,576,1536},{640,192,576},{200,49152,576},{37,576,576}};
 for(int s=0;s<6;s++){int M=shapes[s][0],N=shapes[s][1],K=shapes[s][2];
  float *A=malloc((size_t)M*K*4),*B=malloc((size_t)N*K*4),*C=malloc((size_t)M*N*4),*D=malloc((size_t)M*N*4);
  for(size_t i=0;i<(size_t)M*K;i++)A[i]=rand()/(float)RAND_MAX-0.5f; for(size_t i=0;i<(size_t)N*K;i++)B[i]=rand()/(float)RAND_MAX-0.5f;
  double best1=1e9,best2=1e9;
  for(int rep=0;rep<5;rep++){ double t=now(); cblas_sgemm(CblasRowMajor,CblasNoTrans,CblasTrans,M,N,K,1,A,K,B,K,0,D,N); t=now()-t; if(t<best1)best1=t;
   t=now(); zt_gemm_nt(A,B,C,M,N,K,N,0); t=now()-t; if(t<best2)best2=t;}
  double maxd=0; for(size_t i=0;i<(size_t)M*N;i++){double d=C[i]-D[i]; if(d<0)d=-d; if(d>maxd)maxd=d;}
  printf("M=%d N=%d K=%d: openblas %.2f GF/s, ours %.2f GF/s (%.2fx), max diff %.2e\n",M,N,K,2.0*M*N*K/best1/1e9,2.0*M*N*K/best2/1e9,best1/best2,maxd);}
}
