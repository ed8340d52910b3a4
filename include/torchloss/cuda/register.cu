// The registration file of torchloss's fused CUDA kernels: compiled by nvcc into the consumer
// by the CMake target torchloss::cuda (only where LibTorch has CUDA). Its static initialiser
// fills the inline function tables of include/torchloss/detail/cuda_registry.hpp, which every
// translation unit shares; without this file the losses run CUDA tensors through ATen ops.
// Compile it into one translation unit per program (the target does exactly that).
#include <torchloss/cuda/center_loss_glue.cuh>

namespace {

struct RegisterTorchlossCudaKernels {
  RegisterTorchlossCudaKernels() {
    auto& center = torchloss::detail::center_loss_cuda_ops;
    center.forward = &torchloss::cuda::detail::center_forward;
    center.update = &torchloss::cuda::detail::center_update;
    center.class_sums = &torchloss::cuda::detail::center_class_sums;
    center.apply_class_sums = &torchloss::cuda::detail::center_apply_class_sums;
  }
};

const RegisterTorchlossCudaKernels register_torchloss_cuda_kernels;

}  // namespace
