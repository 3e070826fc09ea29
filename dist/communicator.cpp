// dist/communicator.cpp: picks the backend for a device (dist/communicator.h): NCCL for CUDA, MPI
// for the CPU; a build without NCCL says so when asked for it.
#include "dist/mpi_detail.h"

#include "core/error.h"

namespace lumen::dist {

std::string_view backend_name(Backend b) { return b == Backend::nccl ? "nccl" : "mpi"; }

bool built_with_nccl() {
#if LUMEN_WITH_NCCL
    return true;
#else
    return false;
#endif
}

std::unique_ptr<Communicator> make_communicator(Device device, const CommOptions& options) {
    return make_communicator(device.is_cuda() ? Backend::nccl : Backend::mpi, device, options);
}

std::unique_ptr<Communicator> make_communicator(Backend backend, Device device, const CommOptions& options) {
    if (backend == Backend::mpi) return make_mpi_communicator(device, options);
#if LUMEN_WITH_NCCL
    return make_nccl_communicator(device, options);
#else
    throw Error("dist make_communicator: this build has no NCCL support (nccl.h / libnccl not found at build time)");
#endif
}

}  // namespace lumen::dist
