//! Nothing to build: the tests in `tests/` exercise `battlement-breaker` with its default
//! features, where call latencies are read from the CPU's time-stamp counter.
