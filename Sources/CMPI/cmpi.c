#include "cmpi.h"

#include <dlfcn.h>
#include <stdio.h>
#include <string.h>

static int resolve(void *handle, const char *name, void **slot, char *error, size_t errorBytes) {
    *slot = dlsym(handle, name);
    if (*slot) return 0;
    snprintf(error, errorBytes, "missing symbol %s (is it Open MPI's libmpi?)", name);
    return -1;
}

#define RESOLVE(field, name) \
    if (resolve(out->handle, name, (void **)&out->field, error, errorBytes)) goto fail;

int zo_mpi_load(const char *path, zo_mpi *out, char *error, size_t errorBytes) {
    memset(out, 0, sizeof *out);
    out->handle = dlopen(path, RTLD_NOW | RTLD_GLOBAL);
    if (!out->handle) {
        snprintf(error, errorBytes, "%s", dlerror());
        return -1;
    }
    RESOLVE(world, "ompi_mpi_comm_world") RESOLVE(byte, "ompi_mpi_byte") RESOLVE(errorsReturn, "ompi_mpi_errors_return")
    RESOLVE(Init_thread, "MPI_Init_thread") RESOLVE(Initialized, "MPI_Initialized") RESOLVE(Finalize, "MPI_Finalize")
    RESOLVE(Comm_rank, "MPI_Comm_rank") RESOLVE(Comm_size, "MPI_Comm_size") RESOLVE(Isend, "MPI_Isend")
    RESOLVE(Irecv, "MPI_Irecv") RESOLVE(Test, "MPI_Test") RESOLVE(Abort, "MPI_Abort")
    RESOLVE(Get_library_version, "MPI_Get_library_version") RESOLVE(Comm_set_errhandler, "MPI_Comm_set_errhandler")
    RESOLVE(Error_string, "MPI_Error_string")
    return 0;
fail:
    dlclose(out->handle);
    memset(out, 0, sizeof *out);
    return -1;
}
