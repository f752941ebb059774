// placeholder, replaced by the kernel helper
#include "common.h"
