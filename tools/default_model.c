// default_model.c - the model a command runs when it is given no -m (default_model.h).
#include <limits.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "default_model.h"

static bool is_file(const char *path) {
    struct stat st;
    return stat(path, &st) == 0 && S_ISREG(st.st_mode);
}

// The shipped model beside this executable, into path (PATH_MAX bytes).
static bool find_shipped(char *path) {
    char exe[PATH_MAX], candidate[PATH_MAX + 64];
    const ssize_t n = readlink("/proc/self/exe", exe, sizeof exe - 1);
    if (n <= 0) return false;
    exe[n] = 0;
    char *slash = strrchr(exe, '/');
    if (!slash) return false;
    *slash = 0;
    static const char *const beside[] = {"/../share/bitnet-gpu/", "/../models/"};
    for (size_t i = 0; i < sizeof beside / sizeof *beside; i++) {
        snprintf(candidate, sizeof candidate, "%s%s%s", exe, beside[i], BN_SHIPPED_MODEL);
        if (is_file(candidate) && realpath(candidate, path)) return true;
    }
    return false;
}

const char *bn_default_model(const char *cmd) {
    static char path[PATH_MAX];
    const char *env = getenv("BITNET_MODEL");
    if (env && *env) {
        if (!is_file(env)) {
            fprintf(stderr, "error: %s: no -m given, and BITNET_MODEL=%s is not a file\n", cmd, env);
            return NULL;
        }
        fprintf(stderr, "note: no -m: the model in BITNET_MODEL, %s\n", env);
        return env;
    }
    const char *downloaded = BN_DOWNLOAD_DIR "/" BN_HUB_DEFAULT_FILE;
    if (is_file(downloaded)) {
        fprintf(stderr, "note: no -m: %s (BitNet b1.58 2B-4T, where `bitnet-gpu download` puts it)\n",
                downloaded);
        return downloaded;
    }
    if (find_shipped(path)) {
        fprintf(stderr,
                "note: no -m, no BITNET_MODEL, no %s here: the 6M model that ships with bitnet-gpu, "
                "%s (trained on Jane Austen's novels, it continues a text; it does not answer "
                "questions). `bitnet-gpu download` fetches BitNet b1.58 2B-4T.\n",
                downloaded, path);
        return path;
    }
    fprintf(stderr,
            "error: %s needs -m MODEL: BITNET_MODEL is not set, there is no %s here "
            "(`bitnet-gpu download` fetches it), and no %s beside this bitnet-gpu\n",
            cmd, downloaded, BN_SHIPPED_MODEL);
    return NULL;
}
