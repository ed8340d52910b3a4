#pragma once
/// \file state_lock.hpp
/// \brief Serialises the read-modify-write updates of the stateful losses' running state
/// (GHM's `acc_sum`, CenterLoss's `centers`) when one module is called from several threads.

#include <torchloss/detail/compat.hpp>

#include <array>
#include <cstdint>
#include <mutex>

namespace torchloss {
namespace detail {

/// Mutexes striped by storage address: a state tensor always maps to the same one, two
/// unrelated tensors rarely share one (and then only wait for each other, never deadlock:
/// a caller holds one lock at a time).
inline std::array<std::mutex, 64>& state_mutexes() {
  static std::array<std::mutex, 64> mutexes;
  return mutexes;
}

/// A lock on the mutex of `state`'s storage, held for the duration of one update of it. An
/// uncontended lock costs tens of nanoseconds, next to microseconds of update.
inline std::unique_lock<std::mutex> state_lock(const torch::Tensor& state) {
  const auto address = reinterpret_cast<std::uintptr_t>(
      state.defined() && state.has_storage() ? state.storage().data() : nullptr);
  // Allocations are aligned: drop the low bits, fold in higher ones.
  const size_t stripe = static_cast<size_t>((address >> 6) ^ (address >> 14)) % state_mutexes().size();
  return std::unique_lock<std::mutex>(state_mutexes()[stripe]);
}

}  // namespace detail
}  // namespace torchloss
