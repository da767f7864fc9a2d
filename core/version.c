// version.c - the library's own version, to compare with the header a program
// was compiled against (BITNET_VERSION_STRING).
#include "bitnet.h"

const char *bn_version(void) { return BITNET_VERSION_STRING; }
