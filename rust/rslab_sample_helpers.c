// SPDX-License-Identifier: GPL-2.0
/* rslab_sample.ko's copy of the C helpers (see Kbuild). */
#include "rslab_helpers.c"
