// palu model: blocking thread pool.
#include "thread_pool.h"

#include <algorithm>

namespace palu::model {

ThreadPool::ThreadPool(int n_threads) : n_threads_(std::max(1, n_threads)) {
    for (int t = 1; t < n_threads_; ++t) workers_.emplace_back([this, t] { worker(t); });
}

ThreadPool::~ThreadPool() {
    {
        std::lock_guard<std::mutex> lock(mu_);
        stop_ = true;
    }
    cv_work_.notify_all();
    for (auto& w : workers_) w.join();
}

void ThreadPool::run_items(int thread) {
    for (;;) {
        const int64_t i = next_.fetch_add(1, std::memory_order_relaxed);
        if (i >= n_items_) break;
        (*fn_)(i, thread);
    }
}

void ThreadPool::worker(int thread) {
    uint64_t seen = 0;
    for (;;) {
        {
            std::unique_lock<std::mutex> lock(mu_);
            cv_work_.wait(lock, [&] { return stop_ || generation_ != seen; });
            if (stop_) return;
            seen = generation_;
        }
        run_items(thread);
        {
            std::lock_guard<std::mutex> lock(mu_);
            if (--n_busy_ == 0) cv_done_.notify_one();
        }
    }
}

void ThreadPool::parallel_for(int64_t n, const std::function<void(int64_t, int)>& fn) {
    if (n <= 0) return;
    if (n_threads_ == 1 || n == 1) {
        for (int64_t i = 0; i < n; ++i) fn(i, 0);
        return;
    }
    {
        std::lock_guard<std::mutex> lock(mu_);
        fn_ = &fn;
        n_items_ = n;
        next_.store(0);
        n_busy_ = n_threads_ - 1;
        ++generation_;
    }
    cv_work_.notify_all();
    run_items(0);
    std::unique_lock<std::mutex> lock(mu_);
    cv_done_.wait(lock, [&] { return n_busy_ == 0; });
    fn_ = nullptr;
}

void ThreadPool::parallel_ranges(int64_t n, const std::function<void(int64_t, int64_t)>& fn) {
    const int64_t parts = std::min<int64_t>(n_threads_, n);
    parallel_for(parts, [&](int64_t p, int) { fn(n * p / parts, n * (p + 1) / parts); });
}

}  // namespace palu::model
