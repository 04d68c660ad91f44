/*
 * Small C functions for what bindgen cannot reach: thread-local variables
 * that DPDK exposes through macros.
 */
#ifndef DVRB_SHIM_H
#define DVRB_SHIM_H

/* The calling thread's rte_errno (a thread-local behind a macro). */
int dvrb_errno(void);

/* Sets the calling thread's rte_errno. */
void dvrb_set_errno(int value);

#endif /* DVRB_SHIM_H */
