// tests/dist/mpirun_testing.h: the mpirun command line the tests start ranks with: as root (CI), on however
// many cores there are, and without the OMPI_/PMIX_ variables that an MPI singleton in this test process
// leaves behind (they would make mpirun think it is nested inside a job), keeping those the machine set.
#pragma once

#include <fmt/format.h>
#include <unistd.h>

#include <set>
#include <string>

namespace lumen::test {

// The names of the environment's variables when this test binary started, before any MPI singleton.
inline std::set<std::string> variable_names() {
    std::set<std::string> names;
    for (char** e = environ; *e; ++e) {
        const std::string entry = *e;
        names.insert(entry.substr(0, entry.find('=')));
    }
    return names;
}
inline const std::set<std::string> startup_variables = variable_names();

// "env -u OMPI_... OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1": the environment to start
// mpirun (or ./train --nproc) in: without the MPI variables that appeared since start-up (the machine's
// own OMPI_MCA_* settings stay).
inline std::string mpirun_environment() {
    std::string command = "env";
    for (const std::string& name : variable_names()) {
        const bool mpi_var = name.starts_with("OMPI_") || name.starts_with("PMIX_") || name.starts_with("PMI_") ||
                             name.starts_with("OPAL_");
        if (mpi_var && !startup_variables.count(name)) command += " -u " + name;
    }
    return command + " OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1";
}

// mpirun_environment() plus "mpirun -np N --oversubscribe --bind-to none".
inline std::string mpirun_command(int np) {
    return mpirun_environment() + fmt::format(" mpirun -np {} --oversubscribe --bind-to none", np);
}

}  // namespace lumen::test
