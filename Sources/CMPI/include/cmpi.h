// dlopen bindings to Open MPI's libmpi (no MPI at build time). Open MPI's handles are pointers:
// MPI_COMM_WORLD and MPI_BYTE are the addresses of its predefined objects, MPI_Request an
// object pointer, MPI_STATUS_IGNORE a null pointer; the table below holds them as void *.
#ifndef ZOTUNE_CMPI_H
#define ZOTUNE_CMPI_H

#include <stddef.h>

typedef struct {
    void *handle;
    void *world;  // MPI_COMM_WORLD (&ompi_mpi_comm_world)
    void *byte;   // MPI_BYTE (&ompi_mpi_byte)
    void *errorsReturn;  // MPI_ERRORS_RETURN (&ompi_mpi_errors_return)
    int (*Init_thread)(int *argc, char ***argv, int required, int *provided);
    int (*Initialized)(int *flag);
    int (*Finalize)(void);
    int (*Comm_rank)(void *comm, int *rank);
    int (*Comm_size)(void *comm, int *size);
    int (*Isend)(const void *buffer, int count, void *type, int destination, int tag, void *comm, void **request);
    int (*Irecv)(void *buffer, int count, void *type, int source, int tag, void *comm, void **request);
    int (*Test)(void **request, int *flag, void *status);
    int (*Abort)(void *comm, int code);
    int (*Get_library_version)(char *version, int *length);
    int (*Comm_set_errhandler)(void *comm, void *handler);
    int (*Error_string)(int code, char *text, int *length);
} zo_mpi;

// MPI_THREAD_SERIALIZED in Open MPI's numbering.
enum { ZO_MPI_THREAD_SERIALIZED = 2, ZO_MPI_MAX_LIBRARY_VERSION_STRING = 256, ZO_MPI_MAX_ERROR_STRING = 256 };

// Opens `path` (RTLD_GLOBAL: Open MPI's plugins resolve symbols of libmpi) and resolves the
// table; on failure writes the reason into `error` and returns -1.
int zo_mpi_load(const char *path, zo_mpi *out, char *error, size_t errorBytes);

#endif
