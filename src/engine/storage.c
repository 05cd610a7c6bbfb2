/* storage.c: storage URI resolution. */
#include "engine/storage.h"

#include <dirent.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>

int ksv_storage_is_model_file(const char *name)
{
    static const char *exts[] = {".json", ".ubj", ".bst"};
    size_t n = strlen(name);
    for (size_t i = 0; i < sizeof exts / sizeof exts[0]; i++) {
        size_t e = strlen(exts[i]);
        if (n > e && strcmp(name + n - e, exts[i]) == 0)
            return 1;
    }
    return 0;
}

int ksv_storage_resolve(const char *uri, char *path, size_t cap, ksv_err *err)
{
    const char *p = uri;
    if (strncmp(uri, "file://", 7) == 0)
        p = uri + 7;
    else if (strstr(uri, "://"))
        return ksv_err_set(err, 400,
                           "storage %s: only file:// URIs and local paths are served by this "
                           "engine version (copy the model to the node first)",
                           uri);
    if (p[0] != '/')
        return ksv_err_set(err, 400, "storage %s: expected an absolute path", uri);
    struct stat st;
    if (stat(p, &st) != 0)
        return ksv_err_set(err, 404, "storage %s: no such file or folder", uri);
    if (S_ISREG(st.st_mode)) {
        if (!ksv_storage_is_model_file(p))
            return ksv_err_set(err, 400, "storage %s: not a model file (.json, .ubj, .bst)",
                               uri);
        if ((size_t)snprintf(path, cap, "%s", p) >= cap)
            return ksv_err_set(err, 400, "storage %s: path too long", uri);
        return 0;
    }
    if (!S_ISDIR(st.st_mode))
        return ksv_err_set(err, 400, "storage %s: not a file or folder", uri);
    DIR *d = opendir(p);
    if (!d)
        return ksv_err_set(err, 400, "storage %s: cannot read folder", uri);
    char found[256] = "";
    int count = 0;
    struct dirent *de;
    while ((de = readdir(d)) != NULL) {
        if (de->d_name[0] == '.' || !ksv_storage_is_model_file(de->d_name))
            continue;
        if (count++ == 0)
            snprintf(found, sizeof found, "%s", de->d_name);
    }
    closedir(d);
    if (count == 0)
        return ksv_err_set(err, 404, "storage %s: the folder holds no model file "
                                     "(.json, .ubj, .bst)", uri);
    if (count > 1)
        return ksv_err_set(err, 400, "storage %s: the folder holds %d model files; name one",
                           uri, count);
    if ((size_t)snprintf(path, cap, "%s/%s", p, found) >= cap)
        return ksv_err_set(err, 400, "storage %s: path too long", uri);
    return 0;
}
