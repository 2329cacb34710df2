// The driver API entry points ZOTune resolves (`_v2` names where libcuda has them), on the CPU.
// One device: "ZOTune CUDA stand-in (CPU)", compute capability 9.0 (ZOTUNE_CUDA_STAND_IN_SM
// changes it), ZOTUNE_CUDA_STAND_IN_MEMORY bytes. Checks what a GPU would fault on, with a
// message: copies and kernel pointer arguments must name device memory where device memory
// is meant and host memory where host memory is; launches are refused beyond a GPU's limits
// (1024 threads a block, 48 KiB of shared memory without an opt-in); after every kernel the
// guards of the allocations it was handed are checked. An async copy from or to memory that
// is not page-locked behaves as CUDA documents (staged, or synchronous for device to host)
// and is counted.
#include "standin.h"

#include <dlfcn.h>
#include <sys/mman.h>
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <mutex>
#include <thread>

namespace standin {

namespace {

std::atomic<bool> initialized{false};
int primaryContext;  // the context handle points here

thread_local int lastCode = 0;
thread_local std::string lastText;

struct Module {
    void *handle;
};

int computeCapability() {
    const char *text = getenv("ZOTUNE_CUDA_STAND_IN_SM");
    return text ? atoi(text) : 90;
}

/// Calls `check(index, pointer)` for each non-null pointer argument of `launch`; the first
/// non-empty answer.
template <typename Check> std::string firstPointerProblem(const Launch &launch, Check check) {
    const KernelInfo &info = *launch.function->info;
    for (unsigned i = 0; i < info.count; ++i) {
        if (!info.parameters[i].pointer) continue;
        uintptr_t pointer;
        memcpy(&pointer, launch.values.data() + launch.offsets[i], sizeof pointer);
        if (pointer == 0) continue;
        std::string problem = check(i, pointer);
        if (!problem.empty()) return problem;
    }
    return "";
}

/// Pointer arguments of a launch that are neither null nor inside device memory.
std::string checkPointers(const Launch &launch) {
    return firstPointerProblem(launch, [&](unsigned i, uintptr_t pointer) -> std::string {
        if (findDevice(pointer, 0, nullptr)) return "";
        char text[160];
        snprintf(text, sizeof text, "argument %u of %s is 0x%llx, which is not device memory%s", i, launch.function->name.c_str(),
                 (unsigned long long)pointer, isPinned((void *)pointer, 1) ? " (it is page-locked host memory)" : "");
        return text;
    });
}

/// The guards of every allocation a launch's pointer arguments point into.
std::string checkLaunchGuards(const Launch &launch) {
    return firstPointerProblem(launch, [](unsigned i, uintptr_t pointer) -> std::string {
        std::string broken = checkGuards(pointer);
        return broken.empty() ? broken : "out-of-bounds write: " + broken + " (argument " + std::to_string(i) + ")";
    });
}

}  // namespace

int fail(int code, const std::string &detail) {
    lastCode = code;
    lastText = detail;
    if (getenv("ZOTUNE_CUDA_STAND_IN_VERBOSE")) fprintf(stderr, "ZOTune CUDA stand-in: %s\n", detail.c_str());
    return code;
}

const char *lastDetail(int code) { return code == lastCode && !lastText.empty() ? lastText.c_str() : nullptr; }

}  // namespace standin

using namespace standin;

#define NEEDS_INIT \
    if (!initialized) return fail(notInitialized, "cuInit has not been called")

ZO_EXPORT int cuInit(unsigned flags) {
    if (flags != 0) return fail(invalidValue, "cuInit flags must be 0");
    initialized = true;
    return success;
}

ZO_EXPORT int cuDriverGetVersion(int *version) {
    if (!version) return fail(invalidValue, "cuDriverGetVersion: null pointer");
    *version = 13000;
    return success;
}

ZO_EXPORT int cuDeviceGetCount(int *count) {
    NEEDS_INIT;
    if (!count) return fail(invalidValue, "cuDeviceGetCount: null pointer");
    *count = 1;
    return success;
}

ZO_EXPORT int cuDeviceGet(int *device, int ordinal) {
    NEEDS_INIT;
    if (!device) return fail(invalidValue, "cuDeviceGet: null pointer");
    if (ordinal != 0) return fail(invalidDevice, "cuDeviceGet: no device " + std::to_string(ordinal));
    *device = 0;
    return success;
}

ZO_EXPORT int cuDeviceGetName(char *name, int length, int device) {
    NEEDS_INIT;
    if (device != 0) return fail(invalidDevice, "cuDeviceGetName: no such device");
    if (!name || length <= 0) return fail(invalidValue, "cuDeviceGetName: no room for the name");
    snprintf(name, size_t(length), "ZOTune CUDA stand-in (CPU, not a GPU)");
    return success;
}

ZO_EXPORT int cuDeviceTotalMem_v2(size_t *bytes, int device) {
    NEEDS_INIT;
    if (device != 0) return fail(invalidDevice, "cuDeviceTotalMem: no such device");
    if (!bytes) return fail(invalidValue, "cuDeviceTotalMem: null pointer");
    *bytes = deviceMemory();
    return success;
}

ZO_EXPORT int cuDeviceGetAttribute(int *value, int attribute, int device) {
    NEEDS_INIT;
    if (device != 0) return fail(invalidDevice, "cuDeviceGetAttribute: no such device");
    if (!value) return fail(invalidValue, "cuDeviceGetAttribute: null pointer");
    switch (attribute) {
    case 1: *value = 1024; break;                                    // max threads per block
    case 8: *value = 48 * 1024; break;                               // max shared memory per block
    case 16: *value = int(std::thread::hardware_concurrency()); break;  // multiprocessors
    case 75: *value = computeCapability() / 10; break;
    case 76: *value = computeCapability() % 10; break;
    default: return fail(invalidValue, "cuDeviceGetAttribute: attribute " + std::to_string(attribute) + " is not emulated");
    }
    return success;
}

ZO_EXPORT int cuDevicePrimaryCtxRetain(void **context, int device) {
    NEEDS_INIT;
    if (device != 0) return fail(invalidDevice, "cuDevicePrimaryCtxRetain: no such device");
    if (!context) return fail(invalidValue, "cuDevicePrimaryCtxRetain: null pointer");
    *context = &primaryContext;
    return success;
}

ZO_EXPORT int cuDevicePrimaryCtxRelease_v2(int device) {
    NEEDS_INIT;
    return device == 0 ? int(success) : fail(invalidDevice, "cuDevicePrimaryCtxRelease: no such device");
}

ZO_EXPORT int cuCtxSetCurrent(void *context) {
    NEEDS_INIT;
    return !context || context == &primaryContext ? int(success) : fail(invalidContext, "cuCtxSetCurrent: unknown context");
}

ZO_EXPORT int cuMemAlloc_v2(uintptr_t *pointer, size_t bytes) {
    NEEDS_INIT;
    return allocateDevice(bytes, pointer);
}

ZO_EXPORT int cuMemFree_v2(uintptr_t pointer) {
    NEEDS_INIT;
    return freeDevice(pointer);
}

ZO_EXPORT int cuMemAllocHost_v2(void **pointer, size_t bytes) {
    NEEDS_INIT;
    return allocateHost(bytes, pointer);
}

ZO_EXPORT int cuMemFreeHost(void *pointer) { return freeHost(pointer); }

ZO_EXPORT int cuMemHostRegister_v2(void *pointer, size_t bytes, unsigned flags) {
    NEEDS_INIT;
    if (flags & ~7u) return fail(invalidValue, "cuMemHostRegister: unknown flags");
    return registerHost(pointer, bytes);
}

ZO_EXPORT int cuMemHostUnregister(void *pointer) { return unregisterHost(pointer); }

namespace {

int checkedStream(void *handle, Stream **stream, const char *call) {
    *stream = streamFor(handle);
    return *stream ? int(success) : fail(invalidHandle, std::string(call) + ": unknown stream");
}

std::string copyGuards(uintptr_t device) {
    std::string broken = checkGuards(device);
    return broken.empty() ? broken : "out-of-bounds write: " + broken;
}

}  // namespace

ZO_EXPORT int cuMemcpyHtoDAsync_v2(uintptr_t target, const void *source, size_t bytes, void *handle) {
    NEEDS_INIT;
    Stream *stream;
    if (int result = checkedStream(handle, &stream, "cuMemcpyHtoDAsync")) return result;
    Allocation allocation;
    if (!findDevice(target, bytes, &allocation)) {
        return fail(invalidValue, "cuMemcpyHtoDAsync of " + std::to_string(bytes) + " bytes: the target is not inside one device allocation");
    }
    if (bytes == 0) return success;
    if (!source || isDevice(uintptr_t(source))) return fail(invalidValue, "cuMemcpyHtoDAsync: the source is device memory, not host memory");
    if (isPinned(source, bytes)) {
        enqueue(stream, "cuMemcpyHtoDAsync", [target, source, bytes] {
            memcpy((void *)target, source, bytes);
            return copyGuards(target);
        });
    } else {
        // Pageable memory: staged before the call returns, as the driver does.
        statistics().pageableCopies++;
        statistics().pageableCopyBytes += bytes;
        auto staged = std::make_shared<std::vector<unsigned char>>((const unsigned char *)source, (const unsigned char *)source + bytes);
        enqueue(stream, "cuMemcpyHtoDAsync (staged)", [target, staged] {
            memcpy((void *)target, staged->data(), staged->size());
            return copyGuards(target);
        });
    }
    return success;
}

ZO_EXPORT int cuMemcpyDtoHAsync_v2(void *target, uintptr_t source, size_t bytes, void *handle) {
    NEEDS_INIT;
    Stream *stream;
    if (int result = checkedStream(handle, &stream, "cuMemcpyDtoHAsync")) return result;
    if (!findDevice(source, bytes, nullptr)) {
        return fail(invalidValue, "cuMemcpyDtoHAsync of " + std::to_string(bytes) + " bytes: the source is not inside one device allocation");
    }
    if (bytes == 0) return success;
    if (!target || isDevice(uintptr_t(target))) return fail(invalidValue, "cuMemcpyDtoHAsync: the target is device memory, not host memory");
    enqueue(stream, "cuMemcpyDtoHAsync", [target, source, bytes] {
        memcpy(target, (const void *)source, bytes);
        return std::string();
    });
    if (isPinned(target, bytes)) return success;
    // Pageable memory: the call returns once the copy is done, as the driver's does.
    statistics().pageableCopies++;
    statistics().pageableCopyBytes += bytes;
    return synchronizeStream(stream);
}

ZO_EXPORT int cuMemsetD8Async_v2(uintptr_t target, unsigned char value, size_t bytes, void *handle) {
    NEEDS_INIT;
    Stream *stream;
    if (int result = checkedStream(handle, &stream, "cuMemsetD8Async")) return result;
    if (!findDevice(target, bytes, nullptr)) return fail(invalidValue, "cuMemsetD8Async: the target is not inside one device allocation");
    enqueue(stream, "cuMemsetD8Async", [target, value, bytes] {
        memset((void *)target, value, bytes);
        return std::string();
    });
    return success;
}

ZO_EXPORT int cuStreamCreate(void **stream, unsigned flags) {
    NEEDS_INIT;
    if (!stream) return fail(invalidValue, "cuStreamCreate: null pointer");
    if (flags > 1) return fail(invalidValue, "cuStreamCreate: unknown flags");
    *stream = createStream();
    return success;
}

ZO_EXPORT int cuStreamDestroy_v2(void *stream) { return destroyStream((Stream *)stream); }

ZO_EXPORT int cuStreamSynchronize(void *handle) {
    NEEDS_INIT;
    Stream *stream;
    if (int result = checkedStream(handle, &stream, "cuStreamSynchronize")) return result;
    return synchronizeStream(stream);
}

ZO_EXPORT int cuStreamWaitEvent(void *handle, void *event, unsigned flags) {
    NEEDS_INIT;
    if (flags != 0) return fail(invalidValue, "cuStreamWaitEvent: flags must be 0");
    return streamWaitEvent(streamFor(handle), (Event *)event);
}

ZO_EXPORT int cuEventCreate(void **event, unsigned flags) {
    NEEDS_INIT;
    if (!event) return fail(invalidValue, "cuEventCreate: null pointer");
    if (flags & ~7u) return fail(invalidValue, "cuEventCreate: unknown flags");
    *event = createEvent();
    return success;
}

ZO_EXPORT int cuEventDestroy_v2(void *event) { return destroyEvent((Event *)event); }

ZO_EXPORT int cuEventRecord(void *event, void *handle) {
    NEEDS_INIT;
    return recordEvent((Event *)event, streamFor(handle));
}

ZO_EXPORT int cuEventSynchronize(void *event) {
    NEEDS_INIT;
    return synchronizeEvent((Event *)event);
}

ZO_EXPORT int cuModuleLoadData(Module **module, const void *image) {
    NEEDS_INIT;
    if (!module || !image) return fail(invalidValue, "cuModuleLoadData: null pointer");
    size_t bytes;
    if (!isStandInImage(image, &bytes)) return fail(invalidImage, "cuModuleLoadData: not an image from the stand-in's NVRTC");
    // A file name never used before in this process: dlopen returns an already loaded object
    // for a name it has seen.
    static std::atomic<uint64_t> loaded{0};
    std::string path = "/tmp/zotune-module-" + std::to_string(getpid()) + "-" + std::to_string(++loaded) + "-XXXXXX";
    int fd = mkstemp(path.data());
    if (fd < 0) return fail(invalidImage, "cuModuleLoadData: cannot create " + path);
    bool written = write(fd, image, bytes) == ssize_t(bytes);
    close(fd);
    void *handle = written ? dlopen(path.c_str(), RTLD_NOW | RTLD_LOCAL) : nullptr;
    std::string error = handle || !written ? "" : dlerror();
    unlink(path.c_str());
    if (!handle) return fail(invalidImage, "cuModuleLoadData: " + (written ? error : std::string("write failed")));
    const char *version = (const char *)dlsym(handle, "zo_stand_in_module");
    if (!version || strcmp(version, moduleVersion) != 0 || !dlsym(handle, "zo_bind")) {
        dlclose(handle);
        return fail(invalidImage, "cuModuleLoadData: not an image from this version of the stand-in's NVRTC");
    }
    *module = new Module{handle};
    return success;
}

ZO_EXPORT int cuModuleUnload(Module *module) {
    if (!module) return fail(invalidHandle, "cuModuleUnload: null module");
    // Kept loaded: functions of it may still be queued on a stream.
    delete module;
    return success;
}

ZO_EXPORT int cuModuleGetFunction(Function **function, Module *module, const char *name) {
    NEEDS_INIT;
    if (!function || !module || !name) return fail(invalidValue, "cuModuleGetFunction: null pointer");
    void *thread = dlsym(module->handle, (std::string("zo_thread_") + name).c_str());
    void *info = dlsym(module->handle, (std::string("zo_info_") + name).c_str());
    if (!thread || !info) return fail(notFound, std::string("cuModuleGetFunction: no kernel named ") + name);
    *function = new Function{name, (const KernelInfo *)info, (void (*)(void **))thread,
                             (void (*)(void *))dlsym(module->handle, "zo_bind"),
                             (void (*)(void))dlsym(module->handle, (std::string("zo_poison_") + name).c_str())};
    return success;
}

ZO_EXPORT int cuLaunchKernel(Function *function, unsigned gridX, unsigned gridY, unsigned gridZ, unsigned blockX,
                             unsigned blockY, unsigned blockZ, unsigned sharedBytes, void *handle, void **parameters,
                             void **extra) {
    NEEDS_INIT;
    if (!function) return fail(invalidHandle, "cuLaunchKernel: null function");
    Stream *stream;
    if (int result = checkedStream(handle, &stream, "cuLaunchKernel")) return result;
    const std::string &name = function->name;
    if (extra) return fail(invalidValue, "cuLaunchKernel(" + name + "): `extra` is not emulated");
    if (!gridX || !gridY || !gridZ || gridY > 65535 || gridZ > 65535 || gridX > 0x7FFFFFFFu) {
        return fail(invalidValue, "cuLaunchKernel(" + name + "): grid " + std::to_string(gridX) + "×" + std::to_string(gridY) +
                                      "×" + std::to_string(gridZ) + " is out of range");
    }
    uint64_t threads = uint64_t(blockX) * blockY * blockZ;
    if (!blockX || !blockY || !blockZ || blockX > 1024 || blockY > 1024 || blockZ > 64 || threads > 1024) {
        return fail(invalidValue, "cuLaunchKernel(" + name + "): a block of " + std::to_string(blockX) + "×" +
                                      std::to_string(blockY) + "×" + std::to_string(blockZ) + " threads is more than a GPU runs");
    }
    const KernelInfo &info = *function->info;
    if (uint64_t(sharedBytes) + info.staticShared > maxSharedBytes) {
        return fail(invalidValue, "cuLaunchKernel(" + name + "): " + std::to_string(sharedBytes) + " bytes of dynamic and " +
                                      std::to_string(info.staticShared) + " of static shared memory exceed " +
                                      std::to_string(maxSharedBytes));
    }
    if (info.count > 0 && !parameters) return fail(invalidValue, "cuLaunchKernel(" + name + "): no parameters");
    auto launch = std::make_shared<Launch>();
    launch->function = function;
    launch->grid[0] = gridX, launch->grid[1] = gridY, launch->grid[2] = gridZ;
    launch->block[0] = blockX, launch->block[1] = blockY, launch->block[2] = blockZ;
    launch->sharedBytes = sharedBytes;
    size_t offset = 0;
    for (unsigned i = 0; i < info.count; ++i) {  // parameter values are copied now, as CUDA does
        const Parameter &parameter = info.parameters[i];
        offset = (offset + parameter.align - 1) / parameter.align * parameter.align;
        launch->offsets.push_back(offset);
        offset += parameter.size;
    }
    launch->values.resize(offset);
    for (unsigned i = 0; i < info.count; ++i) {
        if (!parameters[i]) return fail(invalidValue, "cuLaunchKernel(" + name + "): parameter " + std::to_string(i) + " is null");
        memcpy(launch->values.data() + launch->offsets[i], parameters[i], info.parameters[i].size);
    }
    std::string misuse = checkPointers(*launch);
    if (!misuse.empty()) return fail(illegalAddress, "cuLaunchKernel: " + misuse);
    statistics().kernelLaunches++;
    enqueue(stream, name, [launch] {
        std::string failure = runGrid(*launch);
        std::string broken = checkLaunchGuards(*launch);
        return !broken.empty() ? broken : failure;
    });
    return success;
}

ZO_EXPORT int cuGetErrorString(int result, const char **text) {
    if (!text) return invalidValue;
    if (const char *detail = lastDetail(result)) {
        *text = detail;
        return success;
    }
    switch (result) {
    case success: *text = "no error"; break;
    case invalidValue: *text = "invalid argument"; break;
    case outOfMemory: *text = "out of memory"; break;
    case notInitialized: *text = "initialization error"; break;
    case invalidDevice: *text = "invalid device ordinal"; break;
    case invalidImage: *text = "device kernel image is invalid"; break;
    case invalidContext: *text = "invalid device context"; break;
    case invalidHandle: *text = "invalid resource handle"; break;
    case notFound: *text = "named symbol not found"; break;
    case illegalAddress: *text = "an illegal memory access was encountered"; break;
    case launchOutOfResources: *text = "too many resources requested for launch"; break;
    case hostMemoryAlreadyRegistered: *text = "part or all of the requested memory range is already mapped"; break;
    case hostMemoryNotRegistered: *text = "pointer does not correspond to a registered memory region"; break;
    case launchFailed: *text = "unspecified launch failure"; break;
    default: return invalidValue;
    }
    return success;
}

/// Counters for the stand-in's own tests: pageable copies (count, bytes), kernel launches,
/// GEMMs, whole-block barriers.
ZO_EXPORT void zo_stand_in_statistics(uint64_t out[5]) {
    Statistics &s = statistics();
    out[0] = s.pageableCopies, out[1] = s.pageableCopyBytes, out[2] = s.kernelLaunches, out[3] = s.gemms, out[4] = s.barriers;
}
