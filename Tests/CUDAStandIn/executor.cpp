// Running a kernel's grid on the CPU. Blocks are spread over a pool of threads (as a GPU
// spreads them over its multiprocessors, so blocks really run concurrently). A kernel that
// cannot reach __syncthreads (the stand-in's NVRTC tells) runs its block's threads one after
// the other; otherwise each CUDA thread is a fiber with a stack of its own, run until it
// finishes or reaches __syncthreads. When every thread of the block waits at the barrier, the next round resumes
// them all; a barrier that some of the block's threads never reach (they finished instead) is
// reported as the error it is on a GPU. Fibers switch with a few instructions on x86-64 (the
// callee-saved registers and the stack pointer), ucontext elsewhere.
#include "standin.h"

#include <sys/mman.h>

#include <condition_variable>
#include <cstdio>
#include <cstring>
#include <cstdlib>
#include <mutex>
#include <thread>
#if !defined(__x86_64__)
#include <ucontext.h>
#endif

namespace standin {

namespace {

/// The state a kernel module reads through its `zo_current` (kernel_prelude.inc's layout).
struct ThreadState {
    unsigned thread[3], block[3], blockDim[3], gridDim[3];
    void *dynamicShared;
    void (*barrier)(void);
};

constexpr size_t stackBytes = 32 * 1024;

struct Fiber {
#if defined(__x86_64__)
    void *sp;
#else
    ucontext_t context;
#endif
    unsigned char *stack;
    unsigned thread[3];  // threadIdx
    bool done;
};

struct Executor {
    ThreadState state{};
#if defined(__x86_64__)
    void *scheduler = nullptr;
#else
    ucontext_t scheduler;
#endif
    Fiber *current = nullptr;
    const Launch *launch = nullptr;
    void **arguments = nullptr;
    std::vector<Fiber> fibers;
    std::vector<unsigned> waiting, arrived;  // fibers at a barrier
    std::vector<unsigned char *> stacks;  // free stacks
    std::vector<unsigned char> shared;
    std::string error;
};

thread_local Executor executor;

}  // namespace
}  // namespace standin

#if defined(__x86_64__)
// Saves the callee-saved registers on the current stack, stores its pointer in *save, and
// continues on the stack `load` (whose top holds the same registers and a return address). The
// return is an indirect jump rather than `ret` (measured: the selftest ran in 24 s instead of
// 36). MXCSR and the x87 control word, callee-saved too, are left alone: kernels never change
// rounding modes.
extern "C" void zo_fiber_switch(void **save, void *load);
__asm__(".text\n"
        ".globl zo_fiber_switch\n"
        ".hidden zo_fiber_switch\n"
        ".type zo_fiber_switch,@function\n"
        "zo_fiber_switch:\n"
        "  pushq %rbp\n  pushq %rbx\n  pushq %r12\n  pushq %r13\n  pushq %r14\n  pushq %r15\n"
        "  movq %rsp, (%rdi)\n"
        "  movq %rsi, %rsp\n"
        "  popq %r15\n  popq %r14\n  popq %r13\n  popq %r12\n  popq %rbx\n  popq %rbp\n"
        "  popq %rcx\n"
        "  jmpq *%rcx\n"  // not `ret`: the return-stack predictor is always wrong across stacks
        ".size zo_fiber_switch, .-zo_fiber_switch\n");
#endif

namespace standin {

namespace {

/// A fiber's body: one thread of the kernel, then back to the scheduler for good.
[[noreturn]] void fiberMain() {
    Executor &e = executor;
    e.launch->function->thread(e.arguments);
    e.current->done = true;
#if defined(__x86_64__)
    zo_fiber_switch(&e.current->sp, e.scheduler);
#else
    swapcontext(&e.current->context, &e.scheduler);
#endif
    __builtin_unreachable();
}

void barrier() {
    Executor &e = executor;
    if (!e.current) {
        fprintf(stderr, "ZOTune CUDA stand-in: %s reached __syncthreads, which its NVRTC did not see it could\n",
                e.launch->function->name.c_str());
        abort();
    }
#if defined(__x86_64__)
    zo_fiber_switch(&e.current->sp, e.scheduler);
#else
    swapcontext(&e.current->context, &e.scheduler);
#endif
}

unsigned char *takeStack(Executor &e) {
    if (!e.stacks.empty()) {
        unsigned char *stack = e.stacks.back();
        e.stacks.pop_back();
        return stack;
    }
    // An inaccessible page below each stack turns an overflow into a fault.
    size_t page = 4096;
    void *mapped = mmap(nullptr, stackBytes + page, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
    if (mapped == MAP_FAILED) abort();
    mprotect(mapped, page, PROT_NONE);
    return (unsigned char *)mapped + page;
}

void start(Executor &e, Fiber &fiber) {
    fiber.stack = takeStack(e);
    fiber.done = false;
#if defined(__x86_64__)
    void **sp = (void **)(uintptr_t(fiber.stack + stackBytes) & ~uintptr_t(15));
    *--sp = nullptr;              // fiberMain's return address (it never returns)
    *--sp = (void *)&fiberMain;   // where zo_fiber_switch's final jump goes
    for (int i = 0; i < 6; ++i) *--sp = nullptr;  // rbp, rbx, r12–r15
    fiber.sp = sp;
#else
    getcontext(&fiber.context);
    fiber.context.uc_stack.ss_sp = fiber.stack;
    fiber.context.uc_stack.ss_size = stackBytes;
    fiber.context.uc_link = nullptr;
    makecontext(&fiber.context, (void (*)())fiberMain, 0);
#endif
}

/// Runs `fiber` until it finishes or reaches a barrier; true when it finished.
bool resume(Executor &e, Fiber &fiber) {
    memcpy(e.state.thread, fiber.thread, sizeof fiber.thread);
    e.current = &fiber;
#if defined(__x86_64__)
    zo_fiber_switch(&e.scheduler, fiber.sp);
#else
    swapcontext(&e.scheduler, &fiber.context);
#endif
    if (fiber.done) e.stacks.push_back(fiber.stack);
    return fiber.done;
}

void runBlock(Executor &e, uint64_t index) {
    const Launch &launch = *e.launch;
    e.state.block[0] = unsigned(index % launch.grid[0]);
    e.state.block[1] = unsigned(index / launch.grid[0] % launch.grid[1]);
    e.state.block[2] = unsigned(index / (uint64_t(launch.grid[0]) * launch.grid[1]));
    unsigned threads = launch.block[0] * launch.block[1] * launch.block[2];
    // A new block finds no one's values in its shared memory: NaN bytes.
    if (launch.function->poison) launch.function->poison();
    if (!e.shared.empty()) memset(e.shared.data(), 0xFF, e.shared.size());
    if (!launch.function->info->barriers) {
        e.current = nullptr;
        for (unsigned t = 0; t < threads; ++t) {
            e.state.thread[0] = t % launch.block[0];
            e.state.thread[1] = t / launch.block[0] % launch.block[1];
            e.state.thread[2] = t / (launch.block[0] * launch.block[1]);
            launch.function->thread(e.arguments);
        }
        return;
    }
    if (e.fibers.size() < threads) e.fibers.resize(threads);
    std::vector<unsigned> &waiting = e.waiting, &arrived = e.arrived;
    waiting.clear();
    for (unsigned t = 0; t < threads; ++t) {
        Fiber &fiber = e.fibers[t];
        fiber.thread[0] = t % launch.block[0];
        fiber.thread[1] = t / launch.block[0] % launch.block[1];
        fiber.thread[2] = t / (launch.block[0] * launch.block[1]);
        start(e, fiber);
        if (!resume(e, fiber)) waiting.push_back(t);
    }
    bool divergent = !waiting.empty() && waiting.size() < threads;
    while (!waiting.empty()) {
        if (divergent && e.error.empty()) {
            e.error = "__syncthreads reached by " + std::to_string(waiting.size()) + " of the " + std::to_string(threads) +
                      " threads of block (" + std::to_string(e.state.block[0]) + ", " + std::to_string(e.state.block[1]) +
                      ", " + std::to_string(e.state.block[2]) + "); the others had returned";
        }
        statistics().barriers++;
        arrived.swap(waiting);
        waiting.clear();
        for (unsigned t : arrived) {
            if (!resume(e, e.fibers[t])) waiting.push_back(t);
        }
        divergent = !waiting.empty() && waiting.size() < arrived.size();
    }
}

void prepare(Executor &e, const Launch &launch, void **arguments) {
    e.launch = &launch;
    e.arguments = arguments;
    e.error.clear();
    for (int i = 0; i < 3; ++i) {
        e.state.blockDim[i] = launch.block[i];
        e.state.gridDim[i] = launch.grid[i];
    }
    e.shared.resize(launch.sharedBytes);
    e.state.dynamicShared = e.shared.data();
    e.state.barrier = &barrier;
    launch.function->bind(&e.state);
}

/// Helper threads that take blocks of the grid being run.
struct Pool {
    std::mutex owner;  // held by the launch using the helpers
    std::mutex lock;
    std::condition_variable changed;
    const Launch *launch = nullptr;
    void **arguments = nullptr;
    std::atomic<uint64_t> next{0};
    uint64_t total = 0;
    uint64_t generation = 0;
    unsigned helpers;
    unsigned finished = 0;  // helpers done with the current generation
    std::string error;

    explicit Pool(unsigned helpers) : helpers(helpers) {
        for (unsigned i = 0; i < helpers; ++i) std::thread([this] { serve(); }).detach();
    }

    void serve() {
        uint64_t seen = 0;
        std::unique_lock<std::mutex> held(lock);
        for (;;) {
            changed.wait(held, [&] { return generation != seen; });
            seen = generation;
            const Launch &job = *launch;
            void **jobArguments = arguments;
            held.unlock();
            Executor &e = executor;
            prepare(e, job, jobArguments);
            for (uint64_t b; (b = next++) < total;) runBlock(e, b);
            held.lock();
            if (!e.error.empty() && error.empty()) error = e.error;
            ++finished;
            changed.notify_all();
        }
    }
};

Pool &pool() {
    static Pool *instance = [] {
        unsigned threads = std::thread::hardware_concurrency();
        if (const char *text = getenv("ZOTUNE_CUDA_STAND_IN_THREADS")) threads = unsigned(atoi(text));
        return new Pool(threads > 1 ? threads - 1 : 0);
    }();
    return *instance;
}

}  // namespace

std::string runGrid(const Launch &launch) {
    const KernelInfo &info = *launch.function->info;
    std::vector<void *> arguments(info.count);
    for (unsigned i = 0; i < info.count; ++i) arguments[i] = (void *)(launch.values.data() + launch.offsets[i]);
    uint64_t total = uint64_t(launch.grid[0]) * launch.grid[1] * launch.grid[2];
    Executor &e = executor;
    Pool &p = pool();
    std::unique_lock<std::mutex> owner(p.owner, std::try_to_lock);
    if (!owner.owns_lock() || total == 1 || p.helpers == 0) {  // another stream's kernel has the helpers
        prepare(e, launch, arguments.data());
        for (uint64_t b = 0; b < total; ++b) runBlock(e, b);
        return e.error;
    }
    {
        std::lock_guard<std::mutex> guard(p.lock);
        p.launch = &launch;
        p.arguments = arguments.data();
        p.next = 0;
        p.total = total;
        p.error.clear();
        p.finished = 0;
        ++p.generation;
    }
    p.changed.notify_all();
    prepare(e, launch, arguments.data());
    for (uint64_t b; (b = p.next++) < total;) runBlock(e, b);
    std::unique_lock<std::mutex> held(p.lock);
    p.changed.wait(held, [&] { return p.finished == p.helpers; });  // every helper saw this launch
    return !e.error.empty() ? e.error : p.error;
}

}  // namespace standin
