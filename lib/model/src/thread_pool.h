// palu model (private): a small blocking thread pool for the engine's non-GEMM work (attention
// heads, norms, softmax). Workers sleep on a condition variable between jobs: they must not spin,
// because OpenBLAS's own threads run the GEMMs in between and the machine may be shared.
#pragma once

#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <functional>
#include <mutex>
#include <thread>
#include <vector>

namespace palu::model {

class ThreadPool {
   public:
    /// n_threads >= 1 (the caller counts as one; n_threads - 1 workers are started).
    explicit ThreadPool(int n_threads);
    ~ThreadPool();
    ThreadPool(const ThreadPool&) = delete;
    ThreadPool& operator=(const ThreadPool&) = delete;
    int size() const { return n_threads_; }
    /// Runs fn(i, thread) for i in [0, n), items handed out dynamically; returns when all are done.
    /// fn must not throw. Not reentrant.
    void parallel_for(int64_t n, const std::function<void(int64_t i, int thread)>& fn);
    /// Splits [0, n) into one contiguous range per thread: fn(begin, end).
    void parallel_ranges(int64_t n, const std::function<void(int64_t begin, int64_t end)>& fn);

   private:
    void worker(int thread);
    void run_items(int thread);
    int n_threads_;
    std::vector<std::thread> workers_;
    std::mutex mu_;
    std::condition_variable cv_work_, cv_done_;
    uint64_t generation_ = 0;
    int n_busy_ = 0;
    bool stop_ = false;
    const std::function<void(int64_t, int)>* fn_ = nullptr;
    int64_t n_items_ = 0;
    std::atomic<int64_t> next_{0};
};

}  // namespace palu::model
