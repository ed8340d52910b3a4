// Compile-only check of the raw CUDA kernels (CTest: cuda_kernels_compile): instantiates every
// launcher for every type the ATen glue dispatches, so a broken kernel fails CI on machines
// with nvcc but no GPU and no CUDA LibTorch. Never run.
#include <torchloss/cuda/center_loss_kernels.cuh>

namespace kernels = torchloss::cuda::kernels;

template <typename T, typename Acc>
void instantiate_center_loss(cudaStream_t stream) {
  kernels::launch_center_forward<T, Acc>(nullptr, nullptr, nullptr, 0, 0, 0, nullptr, nullptr, nullptr, stream);
}

template <typename Acc>
void instantiate_center_update(cudaStream_t stream) {
  kernels::launch_center_update_atomic<Acc>(nullptr, nullptr, nullptr, nullptr, 0, 0, 0, 0.5, stream);
  kernels::launch_center_update_segmented<Acc>(nullptr, nullptr, nullptr, nullptr, nullptr, 0, 0, 0.5, stream);
  kernels::launch_class_sums_segmented<Acc>(nullptr, nullptr, nullptr, nullptr, 0, 0, stream);
  kernels::launch_apply_class_sums<Acc>(nullptr, nullptr, nullptr, nullptr, 0, 0, 0.5, stream);
}

void instantiate_all(cudaStream_t stream) {
  instantiate_center_loss<float, float>(stream);
  instantiate_center_loss<double, double>(stream);
  instantiate_center_loss<__half, float>(stream);
  instantiate_center_loss<__nv_bfloat16, float>(stream);
  instantiate_center_update<float>(stream);
  instantiate_center_update<double>(stream);
}
