#pragma once
/// \file module_state.hpp
/// \brief Loading a saved state into a loss module: a tensor the state holds but the module
/// did not register (an optional `weight` / `alpha` / `log_vars` the module was built
/// without) is an error, not silently dropped.

#include <torchloss/detail/checks.hpp>

#include <torch/serialize/input-archive.h>

#include <string>

namespace torchloss {
namespace detail {

/// Raises when `archive` holds a tensor `name` that the module `module` (its public name,
/// e.g. "torchloss::FocalLoss") did not register (`registered` false): loading would drop it
/// and the module would compute another loss than the one that was saved. LibTorch itself
/// refuses the other direction (a registered tensor missing from the archive).
inline void check_no_unregistered_tensor(torch::serialize::InputArchive& archive, const std::string& module,
                                         const char* name, bool registered, const char* option) {
  if (registered) return;
  torch::Tensor saved;
  if (!archive.try_read(name, saved)) return;
  TORCH_CHECK(false, module, ": the state being loaded has a '", name, "' tensor of shape ", shape_str(saved),
              " but this module was built without one, so it would be ignored; build the module with ", option,
              " (any values of that shape: load() then restores the saved ones)");
}

}  // namespace detail
}  // namespace torchloss
