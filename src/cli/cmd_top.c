/* cmd_top.c: `ksv top [ksv-top options]`: runs the console (ksv-top) in this process. */
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "cli/cli.h"

/* ksv-top beside this ksv first (a build tree, an install prefix), then PATH. */
static int top(ksv_cli *cli, int argc, char **argv)
{
    (void)cli;
    char self[4096];
    ssize_t n = readlink("/proc/self/exe", self, sizeof self - 16);
    if (n > 0) {
        self[n] = '\0';
        char *slash = strrchr(self, '/');
        if (slash) {
            strcpy(slash + 1, "ksv-top");
            if (access(self, X_OK) == 0) {
                argv[-1] = self;
                execv(self, argv - 1);
            }
        }
    }
    char *args[64] = {(char *)"ksv-top"};
    for (int i = 0; i < argc && i < 62; i++)
        args[i + 1] = argv[i];
    execvp("ksv-top", args);
    return ksv_fail("ksv-top is not installed in this build yet");
}

static const ksv_cmd_entry top_entries[] = {
    {.raw_args = true, .exec_raw = top},
    {0},
};

const ksv_cmd_group ksv_cmd_group_top = {
    .name = "top",
    .usage = "top [ksv-top options]",
    .entries = top_entries,
};
