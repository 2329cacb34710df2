#include "ccuda.h"

#include <dlfcn.h>
#include <stdio.h>
#include <string.h>

// Resolves `name` (or `name_v2` first when `versioned`) into *slot; on failure writes the
// message and returns -1.
static int resolve(void *handle, const char *name, int versioned, void **slot, char *error, size_t errorBytes) {
    if (versioned) {
        char v2[128];
        snprintf(v2, sizeof v2, "%s_v2", name);
        *slot = dlsym(handle, v2);
        if (*slot) return 0;
    }
    *slot = dlsym(handle, name);
    if (*slot) return 0;
    snprintf(error, errorBytes, "missing symbol %s", name);
    return -1;
}

static void *open_library(const char *path, char *error, size_t errorBytes) {
    void *handle = dlopen(path, RTLD_NOW | RTLD_LOCAL);
    if (!handle) snprintf(error, errorBytes, "%s", dlerror());
    return handle;
}

#define RESOLVE(table, name, versioned) \
    if (resolve(table->handle, #name, versioned, (void **)&table->name, error, errorBytes)) goto fail;

int zo_cuda_load_driver(const char *path, zo_cuda_driver *out, char *error, size_t errorBytes) {
    memset(out, 0, sizeof *out);
    if (!(out->handle = open_library(path, error, errorBytes))) return -1;
    RESOLVE(out, cuInit, 0) RESOLVE(out, cuDriverGetVersion, 0) RESOLVE(out, cuDeviceGetCount, 0) RESOLVE(out, cuDeviceGet, 0)
    RESOLVE(out, cuDeviceGetName, 0) RESOLVE(out, cuDeviceTotalMem, 1) RESOLVE(out, cuDeviceGetAttribute, 0)
    RESOLVE(out, cuDevicePrimaryCtxRetain, 0) RESOLVE(out, cuDevicePrimaryCtxRelease, 1) RESOLVE(out, cuCtxSetCurrent, 0)
    RESOLVE(out, cuMemAlloc, 1) RESOLVE(out, cuMemFree, 1) RESOLVE(out, cuMemAllocHost, 1) RESOLVE(out, cuMemFreeHost, 0)
    RESOLVE(out, cuMemHostRegister, 1) RESOLVE(out, cuMemHostUnregister, 0)
    RESOLVE(out, cuMemcpyHtoDAsync, 1) RESOLVE(out, cuMemcpyDtoHAsync, 1) RESOLVE(out, cuMemsetD8Async, 1)
    RESOLVE(out, cuStreamCreate, 0) RESOLVE(out, cuStreamDestroy, 1) RESOLVE(out, cuStreamSynchronize, 0)
    RESOLVE(out, cuStreamWaitEvent, 0) RESOLVE(out, cuEventCreate, 0) RESOLVE(out, cuEventDestroy, 1)
    RESOLVE(out, cuEventRecord, 0) RESOLVE(out, cuEventSynchronize, 0) RESOLVE(out, cuModuleLoadData, 0)
    RESOLVE(out, cuModuleUnload, 0) RESOLVE(out, cuModuleGetFunction, 0) RESOLVE(out, cuLaunchKernel, 0)
    RESOLVE(out, cuGetErrorString, 0)
    return 0;
fail:
    dlclose(out->handle);
    memset(out, 0, sizeof *out);
    return -1;
}

int zo_cuda_load_nvrtc(const char *path, zo_nvrtc *out, char *error, size_t errorBytes) {
    memset(out, 0, sizeof *out);
    if (!(out->handle = open_library(path, error, errorBytes))) return -1;
    RESOLVE(out, nvrtcVersion, 0) RESOLVE(out, nvrtcGetErrorString, 0) RESOLVE(out, nvrtcCreateProgram, 0)
    RESOLVE(out, nvrtcDestroyProgram, 0) RESOLVE(out, nvrtcCompileProgram, 0) RESOLVE(out, nvrtcGetProgramLogSize, 0)
    RESOLVE(out, nvrtcGetProgramLog, 0) RESOLVE(out, nvrtcGetCUBINSize, 0) RESOLVE(out, nvrtcGetCUBIN, 0)
    RESOLVE(out, nvrtcGetPTXSize, 0) RESOLVE(out, nvrtcGetPTX, 0)
    return 0;
fail:
    dlclose(out->handle);
    memset(out, 0, sizeof *out);
    return -1;
}

int zo_cuda_load_cublas(const char *path, zo_cublas *out, char *error, size_t errorBytes) {
    memset(out, 0, sizeof *out);
    if (!(out->handle = open_library(path, error, errorBytes))) return -1;
    RESOLVE(out, cublasCreate, 1) RESOLVE(out, cublasDestroy, 1) RESOLVE(out, cublasGetVersion, 1)
    RESOLVE(out, cublasSetStream, 1) RESOLVE(out, cublasSetWorkspace, 1) RESOLVE(out, cublasSetMathMode, 0)
    RESOLVE(out, cublasGemmEx, 0)
    return 0;
fail:
    dlclose(out->handle);
    memset(out, 0, sizeof *out);
    return -1;
}
