// OpenBLAS's CBLAS interface plus its thread-count controls. No logic here.
#include <cblas.h>
