/* fuzz_ssh_config.c: ~/.ssh/config as ksv reads it for a Host alias, and ssh:// node
 * addresses (src/remote/ssh_config.c). */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "remote/ssh_config.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char *text = malloc(size + 1);
    if (!text)
        return 0;
    memcpy(text, data, size);
    text[size] = '\0';
    ksv_ssh_host_config cfg;
    ksv_err err;
    ksv_ssh_config_lookup_text(text, "fuzz_config", "edge", "", 0, &cfg, &err);
    ksv_ssh_config_lookup_text(text, "fuzz_config", "gpu-box", "ops", 2222, &cfg, &err);
    char user[256], host[256];
    int port;
    ksv_ssh_parse_address(text, user, sizeof user, host, sizeof host, &port, &err);
    free(text);
    return 0;
}
