// dist/mpi_environment.cpp: where this process stands in the job (from mpirun's environment), MPI's
// one initialisation (MPI_THREAD_MULTIPLE) and its finalisation at exit, and the checked-call and
// communicator-duplication helpers of dist/mpi_detail.h.
#include "dist/mpi_detail.h"

#include "core/error.h"

#include <fmt/format.h>

#include <algorithm>
#include <cstdlib>
#include <mutex>
#include <optional>
#include <vector>

namespace lumen::dist {

namespace {

std::optional<int> env_int(const char* name) {
    const char* value = std::getenv(name);
    if (!value || !*value) return std::nullopt;
    char* end = nullptr;
    long v = std::strtol(value, &end, 10);
    if (*end != '\0' || v < 0) throw Error(fmt::format("dist: environment variable {}='{}' is not a rank or size", name, value));
    return int(v);
}

std::mutex& registry_mutex() {
    static std::mutex m;
    return m;
}
std::vector<Watchdog*>& registry() {
    static std::vector<Watchdog*> dogs;
    return dogs;
}

const char* thread_level_name(int level) {
    switch (level) {
        case MPI_THREAD_SINGLE: return "MPI_THREAD_SINGLE";
        case MPI_THREAD_FUNNELED: return "MPI_THREAD_FUNNELED";
        case MPI_THREAD_SERIALIZED: return "MPI_THREAD_SERIALIZED";
        case MPI_THREAD_MULTIPLE: return "MPI_THREAD_MULTIPLE";
        default: return "an unknown thread level";
    }
}

// Registered with atexit by the ensure_mpi that initialised MPI.
void finalize_at_exit() {
    int finalized = 0;
    MPI_Finalized(&finalized);
    if (finalized) return;
    std::vector<Watchdog*> dogs;
    {
        std::lock_guard lock(registry_mutex());
        dogs = registry();
    }
    for (Watchdog* dog : dogs) dog->stop();  // NOTE: their threads call MPI: stop them first
    MPI_Finalize();
}

}  // namespace

Launch detect_launch() {
    Launch launch;
    if (auto rank = env_int("OMPI_COMM_WORLD_RANK")) {
        launch.under_mpirun = true;
        launch.rank = *rank;
        launch.world = env_int("OMPI_COMM_WORLD_SIZE").value_or(1);
        launch.local_rank = env_int("OMPI_COMM_WORLD_LOCAL_RANK").value_or(launch.rank);
        launch.local_world = env_int("OMPI_COMM_WORLD_LOCAL_SIZE").value_or(launch.world);
    } else if (auto pmi_rank = env_int("PMI_RANK")) {  // MPICH's hydra, Slurm's PMI
        launch.under_mpirun = true;
        launch.rank = *pmi_rank;
        launch.world = env_int("PMI_SIZE").value_or(1);
        launch.local_rank = env_int("MPI_LOCALRANKID").value_or(launch.rank);
        launch.local_world = env_int("MPI_LOCALNRANKS").value_or(launch.world);
    }
    // NOTE: a bare PMIx launch (PMIX_RANK alone) names no world size in the environment: not read
    if (launch.rank >= launch.world)
        throw Error(fmt::format("dist: the launcher says rank {} of a world of {}", launch.rank, launch.world));
    return launch;
}

void ensure_mpi() {
    static std::mutex m;
    std::lock_guard lock(m);
    int finalized = 0;
    MPI_Finalized(&finalized);
    if (finalized) throw Error("dist: MPI has already been finalised (communicators cannot be made at exit)");
    int initialized = 0;
    MPI_Initialized(&initialized);
    int provided = MPI_THREAD_SINGLE;
    if (initialized) {
        MPI_Query_thread(&provided);
    } else {
        int rc = MPI_Init_thread(nullptr, nullptr, MPI_THREAD_MULTIPLE, &provided);
        if (rc != MPI_SUCCESS) throw Error(fmt::format("dist: MPI_Init_thread failed (error {})", rc));
        std::atexit(finalize_at_exit);
    }
    if (provided < MPI_THREAD_MULTIPLE)
        throw Error(fmt::format("dist: the MPI library provides {}, lumen needs MPI_THREAD_MULTIPLE (the "
                                "watchdog's heartbeat thread calls MPI beside the main thread); use an MPI "
                                "built with thread support (Debian's Open MPI is)",
                                thread_level_name(provided)));
}

void check_mpi(int rc, std::string_view op, std::string_view call) {
    if (rc == MPI_SUCCESS) [[likely]] return;
    char text[MPI_MAX_ERROR_STRING] = {};
    int length = 0;
    if (MPI_Error_string(rc, text, &length) != MPI_SUCCESS) length = 0;
    throw Error(fmt::format("dist {}: {} failed: {}", op, call,
                            length > 0 ? std::string(text, size_t(length)) : fmt::format("MPI error {}", rc)));
}

void register_watchdog(Watchdog* dog) {
    std::lock_guard lock(registry_mutex());
    registry().push_back(dog);
}

void unregister_watchdog(Watchdog* dog) {
    std::lock_guard lock(registry_mutex());
    std::erase(registry(), dog);
}

MPI_Comm duplicate_world(std::string_view op) {
    MPI_Comm comm = MPI_COMM_NULL;
    check_mpi(MPI_Comm_dup(MPI_COMM_WORLD, &comm), op, "MPI_Comm_dup(MPI_COMM_WORLD)");
    check_mpi(MPI_Comm_set_errhandler(comm, MPI_ERRORS_RETURN), op, "MPI_Comm_set_errhandler");
    return comm;
}

void free_comm(MPI_Comm& comm) {
    if (comm == MPI_COMM_NULL) return;
    int finalized = 0;
    MPI_Finalized(&finalized);
    if (!finalized) MPI_Comm_free(&comm);
    comm = MPI_COMM_NULL;
}

}  // namespace lumen::dist
