// Run-time bindings to the CUDA driver, NVRTC and cuBLAS: the few types and entry points
// ZOTune uses, declared here so that nothing CUDA is needed at build time. Each library is
// dlopen'ed by path and its functions resolved into a table; a missing library or symbol
// is an error message, never a crash. No logic beyond loading lives here.
#ifndef ZOTUNE_CCUDA_H
#define ZOTUNE_CCUDA_H

#include <stddef.h>
#include <stdint.h>

typedef int zo_cu_result;            // CUresult: 0 is success
typedef int zo_cu_device;            // CUdevice
typedef struct zo_cu_context *zo_cu_context;
typedef struct zo_cu_module *zo_cu_module;
typedef struct zo_cu_function *zo_cu_function;
typedef struct zo_cu_stream *zo_cu_stream;
typedef struct zo_cu_event *zo_cu_event;
typedef uint64_t zo_cu_deviceptr;    // CUdeviceptr (64-bit)

// cuDeviceGetAttribute ids used here.
enum {
    ZO_CU_ATTRIBUTE_MULTIPROCESSOR_COUNT = 16,
    ZO_CU_ATTRIBUTE_COMPUTE_CAPABILITY_MAJOR = 75,
    ZO_CU_ATTRIBUTE_COMPUTE_CAPABILITY_MINOR = 76,
};

/// The driver API (libcuda.so.1), `_v2` entry points resolved under their plain names.
typedef struct {
    void *handle;
    zo_cu_result (*cuInit)(unsigned int flags);
    zo_cu_result (*cuDriverGetVersion)(int *version);
    zo_cu_result (*cuDeviceGetCount)(int *count);
    zo_cu_result (*cuDeviceGet)(zo_cu_device *device, int ordinal);
    zo_cu_result (*cuDeviceGetName)(char *name, int length, zo_cu_device device);
    zo_cu_result (*cuDeviceTotalMem)(size_t *bytes, zo_cu_device device);
    zo_cu_result (*cuDeviceGetAttribute)(int *value, int attribute, zo_cu_device device);
    zo_cu_result (*cuDevicePrimaryCtxRetain)(zo_cu_context *context, zo_cu_device device);
    zo_cu_result (*cuDevicePrimaryCtxRelease)(zo_cu_device device);
    zo_cu_result (*cuCtxSetCurrent)(zo_cu_context context);
    zo_cu_result (*cuMemAlloc)(zo_cu_deviceptr *pointer, size_t bytes);
    zo_cu_result (*cuMemFree)(zo_cu_deviceptr pointer);
    zo_cu_result (*cuMemAllocHost)(void **pointer, size_t bytes);
    zo_cu_result (*cuMemFreeHost)(void *pointer);
    zo_cu_result (*cuMemHostRegister)(void *pointer, size_t bytes, unsigned int flags);
    zo_cu_result (*cuMemHostUnregister)(void *pointer);
    zo_cu_result (*cuMemcpyHtoDAsync)(zo_cu_deviceptr target, const void *source, size_t bytes, zo_cu_stream stream);
    zo_cu_result (*cuMemcpyDtoHAsync)(void *target, zo_cu_deviceptr source, size_t bytes, zo_cu_stream stream);
    zo_cu_result (*cuMemsetD8Async)(zo_cu_deviceptr target, unsigned char value, size_t bytes, zo_cu_stream stream);
    zo_cu_result (*cuStreamCreate)(zo_cu_stream *stream, unsigned int flags);
    zo_cu_result (*cuStreamDestroy)(zo_cu_stream stream);
    zo_cu_result (*cuStreamSynchronize)(zo_cu_stream stream);
    zo_cu_result (*cuStreamWaitEvent)(zo_cu_stream stream, zo_cu_event event, unsigned int flags);
    zo_cu_result (*cuEventCreate)(zo_cu_event *event, unsigned int flags);
    zo_cu_result (*cuEventDestroy)(zo_cu_event event);
    zo_cu_result (*cuEventRecord)(zo_cu_event event, zo_cu_stream stream);
    zo_cu_result (*cuEventSynchronize)(zo_cu_event event);
    zo_cu_result (*cuModuleLoadData)(zo_cu_module *module, const void *image);
    zo_cu_result (*cuModuleUnload)(zo_cu_module module);
    zo_cu_result (*cuModuleGetFunction)(zo_cu_function *function, zo_cu_module module, const char *name);
    zo_cu_result (*cuLaunchKernel)(zo_cu_function function, unsigned int gridX, unsigned int gridY, unsigned int gridZ,
                                   unsigned int blockX, unsigned int blockY, unsigned int blockZ, unsigned int sharedBytes,
                                   zo_cu_stream stream, void **parameters, void **extra);
    zo_cu_result (*cuGetErrorString)(zo_cu_result result, const char **text);
} zo_cuda_driver;

typedef int zo_nvrtc_result;         // nvrtcResult: 0 is success
typedef struct zo_nvrtc_program *zo_nvrtc_program;

/// NVRTC (libnvrtc.so.*): run-time compilation of CUDA C to PTX or CUBIN.
typedef struct {
    void *handle;
    zo_nvrtc_result (*nvrtcVersion)(int *major, int *minor);
    const char *(*nvrtcGetErrorString)(zo_nvrtc_result result);
    zo_nvrtc_result (*nvrtcCreateProgram)(zo_nvrtc_program *program, const char *source, const char *name, int headers,
                                          const char *const *headerSources, const char *const *headerNames);
    zo_nvrtc_result (*nvrtcDestroyProgram)(zo_nvrtc_program *program);
    zo_nvrtc_result (*nvrtcCompileProgram)(zo_nvrtc_program program, int optionCount, const char *const *options);
    zo_nvrtc_result (*nvrtcGetProgramLogSize)(zo_nvrtc_program program, size_t *bytes);
    zo_nvrtc_result (*nvrtcGetProgramLog)(zo_nvrtc_program program, char *log);
    zo_nvrtc_result (*nvrtcGetCUBINSize)(zo_nvrtc_program program, size_t *bytes);
    zo_nvrtc_result (*nvrtcGetCUBIN)(zo_nvrtc_program program, char *cubin);
    zo_nvrtc_result (*nvrtcGetPTXSize)(zo_nvrtc_program program, size_t *bytes);
    zo_nvrtc_result (*nvrtcGetPTX)(zo_nvrtc_program program, char *ptx);
} zo_nvrtc;

typedef int zo_cublas_status;        // cublasStatus_t: 0 is success
typedef struct zo_cublas_context *zo_cublas_handle;

/// cuBLAS (libcublas.so.*), `_v2` entry points under their plain names.
typedef struct {
    void *handle;
    zo_cublas_status (*cublasCreate)(zo_cublas_handle *handle);
    zo_cublas_status (*cublasDestroy)(zo_cublas_handle handle);
    zo_cublas_status (*cublasGetVersion)(zo_cublas_handle handle, int *version);
    zo_cublas_status (*cublasSetStream)(zo_cublas_handle handle, zo_cu_stream stream);
    zo_cublas_status (*cublasSetWorkspace)(zo_cublas_handle handle, void *workspace, size_t bytes);
    zo_cublas_status (*cublasSetMathMode)(zo_cublas_handle handle, int mode);
    zo_cublas_status (*cublasGemmEx)(zo_cublas_handle handle, int transA, int transB, int m, int n, int k, const void *alpha,
                                     const void *a, int aType, int lda, const void *b, int bType, int ldb, const void *beta,
                                     void *c, int cType, int ldc, int computeType, int algorithm);
} zo_cublas;

/// Opens the library at `path` (a file name searched by the loader, or a path) and resolves
/// every entry point. Returns 0, or -1 with a message in `error` (the library or the first
/// missing symbol); on failure nothing stays open.
int zo_cuda_load_driver(const char *path, zo_cuda_driver *out, char *error, size_t errorBytes);
int zo_cuda_load_nvrtc(const char *path, zo_nvrtc *out, char *error, size_t errorBytes);
int zo_cuda_load_cublas(const char *path, zo_cublas *out, char *error, size_t errorBytes);

#endif
