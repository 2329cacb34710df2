// The ZOTune CUDA stand-in: a CPU implementation of the CUDA driver API, NVRTC and cuBLAS
// entry points that ZOTune loads (Sources/CCUDA/ccuda.c), for tests on machines without a
// GPU. Built only by scripts/cuda-stand-in; never linked into zotune.
//
// This header is the library's internal interface between its files:
//   memory.cpp   device allocations with guard bytes, pinned host ranges
//   streams.cpp  streams (a worker thread each), events, injected delays, errors
//   executor.cpp running a kernel's grid: blocks over a thread pool, a block's threads as fibers
//   driver.cpp   the driver API (cu*)
//   translate.cpp CUDA C rewritten as C++ for the CPU (shared memory, entry points, descriptions)
//   nvrtc.cpp    NVRTC: that C++ compiled by clang into a shared object, the "CUBIN"
//   cublas.cpp   cublasGemmEx through OpenBLAS
#ifndef ZOTUNE_CUDA_STAND_IN_H
#define ZOTUNE_CUDA_STAND_IN_H

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#define ZO_EXPORT extern "C" __attribute__((visibility("default")))

namespace standin {

// CUresult values the stand-in returns (cuda.h's numbering).
enum Result : int {
    success = 0,
    invalidValue = 1,
    outOfMemory = 2,
    notInitialized = 3,
    invalidDevice = 101,
    invalidImage = 200,
    invalidContext = 201,
    invalidHandle = 400,
    notFound = 500,
    illegalAddress = 700,
    launchOutOfResources = 701,
    hostMemoryAlreadyRegistered = 712,
    hostMemoryNotRegistered = 713,
    launchFailed = 719,
};

/// Remembers `detail` as the explanation of `code` for this thread (cuGetErrorString returns
/// it) and prints it when ZOTUNE_CUDA_STAND_IN_VERBOSE is set; returns `code`.
int fail(int code, const std::string &detail);
/// The detail of the last `fail` on this thread for `code`, or nullptr.
const char *lastDetail(int code);

// ---- memory.cpp ----

/// A device allocation: `bytes` usable bytes at `address`, with guard bytes on both sides.
struct Allocation {
    uintptr_t address;
    size_t bytes;
    uint64_t id;  // 1, 2, … in allocation order
};

/// Allocates `bytes` of device memory (filled with 0xFF, i.e. NaN floats, up to 256 MiB).
int allocateDevice(size_t bytes, uintptr_t *address);
/// Frees a device allocation after checking its guards.
int freeDevice(uintptr_t address);
/// The live allocation holding [address, address + bytes), if any.
bool findDevice(uintptr_t address, size_t bytes, Allocation *found);
/// Whether `address` lies in any device allocation (or its guards).
bool isDevice(uintptr_t address);
/// "" when the guards of the allocation holding `address` are intact, else what was overwritten.
std::string checkGuards(uintptr_t address);
/// Checks every live allocation's guards; "" or the first damage found.
std::string checkAllGuards();
/// Describes an allocation for messages ("allocation #3 (4096 bytes at 0x…)").
std::string describe(const Allocation &allocation);

int registerHost(void *pointer, size_t bytes);
int unregisterHost(void *pointer);
/// Whether [pointer, pointer + bytes) is page-locked (registered or from cuMemAllocHost).
bool isPinned(const void *pointer, size_t bytes);
int allocateHost(size_t bytes, void **pointer);
int freeHost(void *pointer);
/// The device's memory size (ZOTUNE_CUDA_STAND_IN_MEMORY bytes, default 8 GiB).
size_t deviceMemory();

/// Counters the stand-in's tests read.
struct Statistics {
    std::atomic<uint64_t> pageableCopies{0};  // async copies from or to memory that was not page-locked
    std::atomic<uint64_t> pageableCopyBytes{0};
    std::atomic<uint64_t> kernelLaunches{0};
    std::atomic<uint64_t> gemms{0};
    std::atomic<uint64_t> barriers{0};         // __syncthreads reached by a whole block
};
Statistics &statistics();

// ---- streams.cpp ----

struct Stream;
struct Event;

/// The stream behind a CUstream handle (nullptr: the default stream).
Stream *streamFor(void *handle);
Stream *createStream();
int destroyStream(Stream *stream);
/// Enqueues `work` (named `what` in messages); it runs on the stream's worker thread in issue
/// order. `work` returns "" or an error detail, kept for the stream's next synchronization.
void enqueue(Stream *stream, std::string what, std::function<std::string()> work);
/// Waits for all work issued to `stream`; returns its first error since the last one reported.
int synchronizeStream(Stream *stream);
/// Waits until every stream is idle (errors stay for each stream's synchronization), as
/// cuMemFree and cuMemHostUnregister do on a GPU.
void synchronizeDevice();
/// Records an error found at issue time (reported by the stream's next synchronization).
void recordError(Stream *stream, const std::string &detail);

Event *createEvent();
int destroyEvent(Event *event);
int recordEvent(Event *event, Stream *stream);
int streamWaitEvent(Stream *stream, Event *event);
int synchronizeEvent(Event *event);

// ---- executor.cpp ----

/// Parameter of a compiled kernel, as the kernel's module describes it.
struct Parameter {
    unsigned size, align, pointer;
};

/// What a compiled module says about one kernel (layout shared with kernel_prelude.inc).
struct KernelInfo {
    unsigned count;
    unsigned staticShared;
    unsigned barriers;  // whether the kernel may reach __syncthreads
    Parameter parameters[64];
};

/// A kernel function loaded from a module.
struct Function {
    std::string name;
    const KernelInfo *info;
    void (*thread)(void **arguments);  // runs one thread of the kernel
    void (*bind)(void *state);         // points the module's thread state at the executor's
    void (*poison)(void);              // fills this thread's copy of its static shared memory with NaN bytes (or null)
};

/// A launch, its parameter values copied.
struct Launch {
    const Function *function;
    unsigned grid[3], block[3];
    unsigned sharedBytes;
    std::vector<unsigned char> values;
    std::vector<size_t> offsets;
};

/// Runs every block of `launch` (on the calling thread and the pool); "" or what went wrong.
std::string runGrid(const Launch &launch);
/// Largest dynamic + static shared memory per block (48 KiB, as without an opt-in attribute).
constexpr unsigned maxSharedBytes = 48 * 1024;

// ---- translate.cpp ----

/// The C++ for the CPU that CUDA C `source` (named `name` in messages) becomes.
std::string translate(const std::string &source, const std::string &name);

// ---- nvrtc.cpp ----

/// What a module's `zo_stand_in_module` says: the layout of its entry points and descriptions.
/// A module from another version of the stand-in is refused as an invalid image.
constexpr const char *moduleVersion = "ZOTune CUDA stand-in module 3";

/// Whether `image` is a module made by the stand-in's NVRTC; its size when it is.
bool isStandInImage(const void *image, size_t *bytes);

}  // namespace standin

#endif
