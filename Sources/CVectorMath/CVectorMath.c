// The functions of CVectorMath are header-only (static inline).
