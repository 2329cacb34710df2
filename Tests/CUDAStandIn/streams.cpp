// Streams and events with CUDA's ordering, and nothing more: each stream runs its work in
// issue order on a worker thread of its own, so work on different streams overlaps unless an
// event orders it. With ZOTUNE_CUDA_STAND_IN_DELAY=seed[,max_us[,percent]] (or
// zo_stand_in_set_delays, for the streams created after it) a seeded random share of a stream's
// operations first sleeps up to max_us, so that a missing event wait shows up as a wrong result
// rather than passing by luck.
#include "standin.h"

#include <chrono>
#include <condition_variable>
#include <cstdio>
#include <cstdlib>
#include <deque>
#include <mutex>
#include <set>
#include <thread>

namespace standin {

namespace {

struct Delays {
    std::atomic<uint64_t> seed{0};
    std::atomic<unsigned> maxMicroseconds{0};
    std::atomic<unsigned> percent{0};
};

Delays &delays() {
    static Delays *instance = [] {
        Delays *d = new Delays;
        if (const char *text = getenv("ZOTUNE_CUDA_STAND_IN_DELAY")) {
            unsigned long long seed = 0;
            unsigned maxMicroseconds = 200, percent = 25;
            sscanf(text, "%llu,%u,%u", &seed, &maxMicroseconds, &percent);
            d->seed = seed;
            d->maxMicroseconds = maxMicroseconds;
            d->percent = percent;
        }
        return d;
    }();
    return *instance;
}

uint64_t splitmix(uint64_t &state) {
    uint64_t z = (state += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}

std::atomic<uint64_t> nextStreamID{1};

}  // namespace

struct Stream {
    std::mutex lock;
    std::condition_variable changed;
    std::deque<std::pair<std::string, std::function<std::string()>>> queue;
    bool stopping = false;
    std::string error;       // first failure since the last synchronization that reported one
    uint64_t random;
    // The delays in force when the stream was created.
    unsigned percent = delays().percent, maxMicroseconds = delays().maxMicroseconds;
    std::thread worker;

    Stream() : random((nextStreamID++ * 0x2545F4914F6CDD1Dull) ^ delays().seed) {
        worker = std::thread([this] { run(); });
    }

    void run() {
        std::unique_lock<std::mutex> held(lock);
        for (;;) {
            changed.wait(held, [this] { return stopping || !queue.empty(); });
            if (queue.empty()) return;
            auto &[what, work] = queue.front();
            held.unlock();
            pause();
            std::string failure = work();
            held.lock();
            if (!failure.empty() && error.empty()) error = what + ": " + failure;
            queue.pop_front();
            changed.notify_all();
        }
    }

    /// The injected delay before one operation, if any.
    void pause() {
        if (percent == 0 || maxMicroseconds == 0) return;
        uint64_t draw = splitmix(random);
        if (draw % 100 >= percent) return;
        std::this_thread::sleep_for(std::chrono::microseconds((draw >> 32) % (maxMicroseconds + 1)));
    }

    /// Waits until everything queued has run (`held` holds `lock`).
    void waitIdle(std::unique_lock<std::mutex> &held) {
        changed.wait(held, [this] { return queue.empty(); });
    }

    /// The first failure since the last one reported, as a CUresult (`lock` held); clears it.
    int takeError() {
        if (error.empty()) return success;
        std::string detail = std::move(error);
        error.clear();
        return fail(illegalAddress, detail);
    }

    /// Runs what is queued, then ends the worker (the object itself is never freed: a waiter
    /// may still hold it, and its address must not come back as another stream's).
    void stop() {
        {
            std::lock_guard<std::mutex> guard(lock);
            stopping = true;
        }
        changed.notify_all();
        worker.join();
    }
};

struct Event {
    std::mutex lock;
    std::condition_variable changed;
    uint64_t recorded = 0;   // records issued
    uint64_t completed = 0;  // records reached by their stream
    Stream *stream = nullptr;
};

namespace {

struct Registry {
    std::mutex lock;
    std::set<Stream *> streams;
    std::set<Event *> events;
};

Registry &registry() {
    static Registry *instance = new Registry;
    return *instance;
}

bool live(Stream *stream) {
    std::lock_guard<std::mutex> guard(registry().lock);
    return registry().streams.count(stream) != 0;
}

bool live(Event *event) {
    std::lock_guard<std::mutex> guard(registry().lock);
    return registry().events.count(event) != 0;
}

}  // namespace

Stream *streamFor(void *handle) {
    if (!handle) {
        static Stream *defaultStream = createStream();
        return defaultStream;
    }
    Stream *stream = (Stream *)handle;
    return live(stream) ? stream : nullptr;
}

Stream *createStream() {
    Stream *stream = new Stream;
    std::lock_guard<std::mutex> guard(registry().lock);
    registry().streams.insert(stream);
    return stream;
}

int destroyStream(Stream *stream) {
    {
        std::lock_guard<std::mutex> guard(registry().lock);
        if (!stream || !registry().streams.erase(stream)) return fail(invalidHandle, "cuStreamDestroy of an unknown stream");
    }
    stream->stop();  // its queued work runs first; the object is retired, not freed
    return success;
}

void enqueue(Stream *stream, std::string what, std::function<std::string()> work) {
    {
        std::lock_guard<std::mutex> guard(stream->lock);
        stream->queue.emplace_back(std::move(what), std::move(work));
    }
    stream->changed.notify_all();
}

void recordError(Stream *stream, const std::string &detail) {
    std::lock_guard<std::mutex> guard(stream->lock);
    if (stream->error.empty()) stream->error = detail;
}

int synchronizeStream(Stream *stream) {
    std::unique_lock<std::mutex> held(stream->lock);
    stream->waitIdle(held);
    return stream->takeError();
}

void synchronizeDevice() {
    std::vector<Stream *> streams;
    {
        std::lock_guard<std::mutex> guard(registry().lock);
        streams.assign(registry().streams.begin(), registry().streams.end());
    }
    for (Stream *stream : streams) {
        std::unique_lock<std::mutex> held(stream->lock);
        stream->waitIdle(held);
    }
}

Event *createEvent() {
    Event *event = new Event;
    std::lock_guard<std::mutex> guard(registry().lock);
    registry().events.insert(event);
    return event;
}

int destroyEvent(Event *event) {
    std::lock_guard<std::mutex> guard(registry().lock);
    if (!event || !registry().events.erase(event)) return fail(invalidHandle, "cuEventDestroy of an unknown event");
    // Retired, never freed: work already queued may still complete it.
    static std::vector<Event *> retired;
    retired.push_back(event);
    return success;
}

int recordEvent(Event *event, Stream *stream) {
    if (!live(event)) return fail(invalidHandle, "cuEventRecord of an unknown event");
    if (!stream) return fail(invalidHandle, "cuEventRecord on an unknown stream");
    uint64_t target;
    {
        std::lock_guard<std::mutex> guard(event->lock);
        target = ++event->recorded;
        event->stream = stream;
    }
    enqueue(stream, "cuEventRecord", [event, target] {
        {
            std::lock_guard<std::mutex> guard(event->lock);
            if (target > event->completed) event->completed = target;
        }
        event->changed.notify_all();
        return std::string();
    });
    return success;
}

int streamWaitEvent(Stream *stream, Event *event) {
    if (!live(event)) return fail(invalidHandle, "cuStreamWaitEvent on an unknown event");
    if (!stream) return fail(invalidHandle, "cuStreamWaitEvent of an unknown stream");
    uint64_t target;
    {
        std::lock_guard<std::mutex> guard(event->lock);
        target = event->recorded;  // the most recent record at the time of the call
    }
    if (target == 0) return success;
    enqueue(stream, "cuStreamWaitEvent", [event, target] {
        std::unique_lock<std::mutex> held(event->lock);
        event->changed.wait(held, [event, target] { return event->completed >= target; });
        return std::string();
    });
    return success;
}

int synchronizeEvent(Event *event) {
    if (!live(event)) return fail(invalidHandle, "cuEventSynchronize of an unknown event");
    Stream *stream;
    {
        std::unique_lock<std::mutex> held(event->lock);
        uint64_t target = event->recorded;
        event->changed.wait(held, [event, target] { return event->completed >= target; });
        stream = event->stream;
    }
    if (!stream) return success;
    std::lock_guard<std::mutex> guard(stream->lock);  // streams are never freed, so this one is still there
    return stream->takeError();
}

}  // namespace standin

ZO_EXPORT void zo_stand_in_get_delays(uint64_t *seed, unsigned *maxMicroseconds, unsigned *percent) {
    standin::Delays &d = standin::delays();
    *seed = d.seed;
    *maxMicroseconds = d.maxMicroseconds;
    *percent = d.percent;
}

ZO_EXPORT void zo_stand_in_set_delays(uint64_t seed, unsigned maxMicroseconds, unsigned percent) {
    standin::Delays &d = standin::delays();
    d.seed = seed;
    d.maxMicroseconds = maxMicroseconds;
    d.percent = percent;
}
