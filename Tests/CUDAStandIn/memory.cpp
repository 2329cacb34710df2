// Device memory with guard bytes, and page-locked host ranges.
//
// Every device allocation is its own mapping: an inaccessible page, 256 guard bytes, the
// allocation (256-byte aligned, as cuMemAlloc's), guard bytes up to the end of its page, and
// another inaccessible page. A write just past either end changes guard bytes (found on free,
// after each kernel that was handed the allocation, at stream synchronization and at exit); a
// write far past faults. New allocations hold 0xFF bytes (NaN floats), so a read of memory
// never written shows up instead of reading zeros by luck.
#include "standin.h"

#include <sys/mman.h>
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <map>
#include <mutex>

namespace standin {

namespace {

constexpr unsigned char guardByte = 0xFD;
constexpr size_t frontGuard = 256;
constexpr size_t fillLimit = size_t(256) << 20;

struct Mapping {
    Allocation allocation;
    unsigned char *base;  // the mapping, first inaccessible page included
    size_t length;
};

struct Memory {
    std::mutex lock;
    std::map<uintptr_t, Mapping> device;             // by address
    std::map<uintptr_t, size_t> pinned;              // registered host ranges, by start
    std::map<uintptr_t, size_t> hostAllocations;     // cuMemAllocHost, by start
    size_t inUse = 0;
    uint64_t nextID = 1;
};

Memory &memory() {
    static Memory *instance = new Memory;  // never destroyed: used by the exit check
    return *instance;
}

size_t pageSize() {
    static size_t size = size_t(sysconf(_SC_PAGESIZE));
    return size;
}

size_t roundUp(size_t value, size_t multiple) { return (value + multiple - 1) / multiple * multiple; }

/// The mapping holding `address` (lock held).
const Mapping *holding(Memory &m, uintptr_t address) {
    auto it = m.device.upper_bound(address);
    if (it == m.device.begin()) return nullptr;
    --it;
    const Mapping &mapping = it->second;
    uintptr_t start = uintptr_t(mapping.base), end = start + mapping.length;
    return address >= start && address < end ? &mapping : nullptr;
}

std::string damage(const Mapping &mapping) {
    const Allocation &a = mapping.allocation;
    const unsigned char *front = (const unsigned char *)a.address - frontGuard;
    for (size_t i = 0; i < frontGuard; ++i) {
        if (front[i] != guardByte) {
            return "the " + std::to_string(frontGuard - i) + " bytes before " + describe(a) + " were overwritten";
        }
    }
    const unsigned char *back = (const unsigned char *)a.address + a.bytes;
    const unsigned char *end = mapping.base + mapping.length - pageSize();
    for (const unsigned char *p = back; p < end; ++p) {
        if (*p != guardByte) {
            return "byte " + std::to_string(a.bytes + size_t(p - back)) + " of " + describe(a) +
                   " (past its end) was overwritten";
        }
    }
    return "";
}

}  // namespace

std::string describe(const Allocation &a) {
    char text[128];
    snprintf(text, sizeof text, "device allocation #%llu (%zu bytes at 0x%llx)", (unsigned long long)a.id, a.bytes,
             (unsigned long long)a.address);
    return text;
}

size_t deviceMemory() {
    static size_t bytes = [] {
        const char *text = getenv("ZOTUNE_CUDA_STAND_IN_MEMORY");
        return text ? size_t(strtoull(text, nullptr, 10)) : size_t(8) << 30;
    }();
    return bytes;
}

int allocateDevice(size_t bytes, uintptr_t *address) {
    if (!address) return fail(invalidValue, "cuMemAlloc: null result pointer");
    if (bytes == 0) return fail(invalidValue, "cuMemAlloc of 0 bytes");
    Memory &m = memory();
    {
        std::lock_guard<std::mutex> guard(m.lock);
        if (m.inUse + bytes > deviceMemory()) {
            return fail(outOfMemory, "cuMemAlloc of " + std::to_string(bytes) + " bytes: " + std::to_string(m.inUse) +
                                         " of " + std::to_string(deviceMemory()) + " in use");
        }
        m.inUse += bytes;
    }
    size_t page = pageSize();
    size_t length = page + roundUp(frontGuard + bytes, page) + page;
    void *base = mmap(nullptr, length, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
    if (base == MAP_FAILED) {
        std::lock_guard<std::mutex> guard(m.lock);
        m.inUse -= bytes;
        return fail(outOfMemory, "cuMemAlloc: mmap of " + std::to_string(length) + " bytes failed");
    }
    unsigned char *bytesAt = (unsigned char *)base;
    mprotect(bytesAt, page, PROT_NONE);
    mprotect(bytesAt + length - page, page, PROT_NONE);
    unsigned char *user = bytesAt + page + frontGuard;
    memset(user - frontGuard, guardByte, frontGuard);
    memset(user + bytes, guardByte, size_t(bytesAt + length - page - (user + bytes)));
    if (bytes <= fillLimit) memset(user, 0xFF, bytes);
    std::lock_guard<std::mutex> guard(m.lock);
    Mapping mapping{{uintptr_t(user), bytes, m.nextID++}, bytesAt, length};
    m.device[uintptr_t(bytesAt)] = mapping;
    *address = uintptr_t(user);
    return success;
}

int freeDevice(uintptr_t address) {
    synchronizeDevice();  // as cuMemFree: queued work that uses the memory finishes first
    Memory &m = memory();
    Mapping mapping;
    {
        std::lock_guard<std::mutex> guard(m.lock);
        const Mapping *found = holding(m, address);
        if (!found || found->allocation.address != address) {
            return fail(invalidValue, "cuMemFree of an address cuMemAlloc did not return");
        }
        mapping = *found;
        m.device.erase(uintptr_t(mapping.base));
        m.inUse -= mapping.allocation.bytes;
    }
    std::string broken = damage(mapping);
    munmap(mapping.base, mapping.length);
    return broken.empty() ? int(success) : fail(illegalAddress, "cuMemFree: " + broken);
}

bool findDevice(uintptr_t address, size_t bytes, Allocation *found) {
    Memory &m = memory();
    std::lock_guard<std::mutex> guard(m.lock);
    const Mapping *mapping = holding(m, address);
    if (!mapping) return false;
    const Allocation &a = mapping->allocation;
    if (found) *found = a;
    return address >= a.address && address + bytes <= a.address + a.bytes && address + bytes >= address;
}

bool isDevice(uintptr_t address) {
    Memory &m = memory();
    std::lock_guard<std::mutex> guard(m.lock);
    return holding(m, address) != nullptr;
}

std::string checkGuards(uintptr_t address) {
    Memory &m = memory();
    std::lock_guard<std::mutex> guard(m.lock);
    const Mapping *mapping = holding(m, address);
    return mapping ? damage(*mapping) : "";
}

std::string checkAllGuards() {
    Memory &m = memory();
    std::lock_guard<std::mutex> guard(m.lock);
    for (auto &entry : m.device) {
        std::string broken = damage(entry.second);
        if (!broken.empty()) return broken;
    }
    return "";
}

namespace {

bool overlapsPinned(Memory &m, uintptr_t start, size_t bytes) {
    auto it = m.pinned.upper_bound(start + bytes - 1);
    if (it == m.pinned.begin()) return false;
    --it;
    return it->first + it->second > start;
}

}  // namespace

int registerHost(void *pointer, size_t bytes) {
    if (!pointer || bytes == 0) return fail(invalidValue, "cuMemHostRegister of an empty range");
    if (isDevice(uintptr_t(pointer))) return fail(invalidValue, "cuMemHostRegister of device memory");
    Memory &m = memory();
    std::lock_guard<std::mutex> guard(m.lock);
    if (overlapsPinned(m, uintptr_t(pointer), bytes)) {
        return fail(hostMemoryAlreadyRegistered, "cuMemHostRegister: the range overlaps one already registered");
    }
    m.pinned[uintptr_t(pointer)] = bytes;
    return success;
}

int unregisterHost(void *pointer) {
    synchronizeDevice();
    Memory &m = memory();
    std::lock_guard<std::mutex> guard(m.lock);
    if (m.hostAllocations.count(uintptr_t(pointer)) || !m.pinned.erase(uintptr_t(pointer))) {
        return fail(hostMemoryNotRegistered, "cuMemHostUnregister of a pointer cuMemHostRegister did not register");
    }
    return success;
}

bool isPinned(const void *pointer, size_t bytes) {
    Memory &m = memory();
    std::lock_guard<std::mutex> guard(m.lock);
    auto it = m.pinned.upper_bound(uintptr_t(pointer));
    if (it == m.pinned.begin()) return false;
    --it;
    return uintptr_t(pointer) + bytes <= it->first + it->second;
}

int allocateHost(size_t bytes, void **pointer) {
    if (!pointer || bytes == 0) return fail(invalidValue, "cuMemAllocHost of 0 bytes");
    void *memoryAt = nullptr;
    if (posix_memalign(&memoryAt, pageSize(), bytes) != 0) return fail(outOfMemory, "cuMemAllocHost failed");
    Memory &m = memory();
    std::lock_guard<std::mutex> guard(m.lock);
    m.pinned[uintptr_t(memoryAt)] = bytes;
    m.hostAllocations[uintptr_t(memoryAt)] = bytes;
    *pointer = memoryAt;
    return success;
}

int freeHost(void *pointer) {
    synchronizeDevice();
    Memory &m = memory();
    {
        std::lock_guard<std::mutex> guard(m.lock);
        if (!m.hostAllocations.erase(uintptr_t(pointer))) {
            return fail(invalidValue, "cuMemFreeHost of a pointer cuMemAllocHost did not return");
        }
        m.pinned.erase(uintptr_t(pointer));
    }
    free(pointer);
    return success;
}

Statistics &statistics() {
    static Statistics *counters = new Statistics;
    return *counters;
}

namespace {

/// At exit: damaged guards of allocations still alive fail the process; with
/// ZOTUNE_CUDA_STAND_IN_REPORT set, the counters are printed.
struct ExitCheck {
    ~ExitCheck() {
        if (getenv("ZOTUNE_CUDA_STAND_IN_REPORT")) {
            Statistics &s = statistics();
            fprintf(stderr, "ZOTune CUDA stand-in: %llu kernel launches, %llu GEMMs, %llu pageable copies (%llu bytes), %llu barriers\n",
                    (unsigned long long)s.kernelLaunches, (unsigned long long)s.gemms, (unsigned long long)s.pageableCopies,
                    (unsigned long long)s.pageableCopyBytes, (unsigned long long)s.barriers);
        }
        std::string broken = checkAllGuards();
        if (broken.empty()) return;
        fprintf(stderr, "ZOTune CUDA stand-in, at exit: %s\n", broken.c_str());
        fflush(stderr);
        _exit(70);
    }
} exitCheck;

}  // namespace

}  // namespace standin
