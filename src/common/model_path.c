/* model_path.c: resolving a local model path to its model file. */
#include "common/model_path.h"

#include <dirent.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>

bool ksv_model_file_name(const char *name)
{
    static const char *exts[] = {".json", ".ubj", ".bst", ".txt"};
    size_t n = strlen(name);
    for (size_t i = 0; i < sizeof exts / sizeof exts[0]; i++) {
        size_t e = strlen(exts[i]);
        if (n > e && strcmp(name + n - e, exts[i]) == 0)
            return true;
    }
    return false;
}

int ksv_model_path_resolve(const char *p, const char *shown, char *path, size_t cap,
                           ksv_err *err)
{
    if (p[0] != '/')
        return ksv_err_set(err, 400, "storage %s: expected an absolute path", shown);
    struct stat st;
    if (stat(p, &st) != 0)
        return ksv_err_set(err, 404, "storage %s: no such file or folder", shown);
    if (S_ISREG(st.st_mode)) {
        if (!ksv_model_file_name(p))
            return ksv_err_set(err, 400, "storage %s: not a model file (.json, .ubj, .bst, .txt)",
                               shown);
        if ((size_t)snprintf(path, cap, "%s", p) >= cap)
            return ksv_err_set(err, 400, "storage %s: path too long", shown);
        return 0;
    }
    if (!S_ISDIR(st.st_mode))
        return ksv_err_set(err, 400, "storage %s: not a file or folder", shown);
    DIR *d = opendir(p);
    if (!d)
        return ksv_err_set(err, 400, "storage %s: cannot read folder", shown);
    char found[256] = "";
    int count = 0;
    struct dirent *de;
    while ((de = readdir(d)) != NULL) {
        if (de->d_name[0] == '.' || !ksv_model_file_name(de->d_name))
            continue;
        /* In a folder, a .txt counts only as LightGBM's own name for it, so that notes or
         * requirements.txt beside model.json do not make the folder ambiguous. */
        size_t n = strlen(de->d_name);
        if (strcmp(de->d_name + n - 4, ".txt") == 0 && strcmp(de->d_name, "model.txt") != 0)
            continue;
        if (count++ == 0)
            snprintf(found, sizeof found, "%s", de->d_name);
    }
    closedir(d);
    if (count == 0)
        return ksv_err_set(err, 404, "storage %s: the folder holds no model file "
                                     "(.json, .ubj, .bst, model.txt)", shown);
    if (count > 1)
        return ksv_err_set(err, 400, "storage %s: the folder holds %d model files; name one",
                           shown, count);
    if ((size_t)snprintf(path, cap, "%s/%s", p, found) >= cap)
        return ksv_err_set(err, 400, "storage %s: path too long", shown);
    return 0;
}
