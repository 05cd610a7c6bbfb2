/* args.c: the one option parser of the ksv commands, driven by their ksv_cmd_entry. */
#include <stdlib.h>
#include <string.h>

#include "cli/cli.h"

static int find_opt(const ksv_cmd_entry *e, const char *word)
{
    for (int i = 0; e->opts && e->opts[i].name && i < KSV_ARGS_MAX_OPTS; i++)
        if (strcmp(word, e->opts[i].name) == 0 ||
            (e->opts[i].alias && strcmp(word, e->opts[i].alias) == 0))
            return i;
    return -1;
}

static int bad_arg(ksv_cli *cli, const ksv_cmd_entry *e, const char *named, const char *arg)
{
    return ksv_usage_text(cli, e->named_option_errors ? named : "unexpected argument %s", arg);
}

/* A number within the option's range; *end must be the end of the text. */
static bool number_ok(const ksv_opt *o, const char *text, double *out)
{
    char *end;
    double v = o->kind == KSV_OPT_LONG ? (double)strtol(text, &end, 10) : strtod(text, &end);
    if (*end)
        return false;
    bool low = o->min_exclusive ? v > o->min : v >= o->min;
    *out = v;
    return low && v <= o->max;
}

int ksv_args_parse(ksv_cli *cli, const ksv_cmd_entry *e, int argc, char **argv, ksv_args *out)
{
    memset(out, 0, sizeof *out);
    out->entry = e;
    for (int i = 0; i < argc; i++) {
        const char *a = argv[i];
        int k = e->opts && a[0] == '-' ? find_opt(e, a) : -2;
        if (k == -1)
            return bad_arg(cli, e, "unknown option %s", a);
        if (k == -2) {
            if (e->max_args >= 0 && out->n_pos >= e->max_args)
                return ksv_usage_text(cli, e->too_many ? e->too_many : "unexpected argument %s",
                                      a);
            if (out->n_pos < KSV_ARGS_MAX_POS)
                out->pos[out->n_pos++] = a;
            continue;
        }
        const ksv_opt *o = &e->opts[k];
        if (o->kind == KSV_OPT_FLAG) {
            out->val[k].set = true;
            continue;
        }
        if (i + 1 >= argc)
            return bad_arg(cli, e, "%s needs a value", a);
        const char *v = argv[++i];
        out->val[k].set = true;
        out->val[k].text = v;
        if (o->kind == KSV_OPT_LIST) {
            if (out->val[k].n_list >= KSV_ARGS_MAX_LIST)
                return ksv_usage_text(cli, "unexpected argument %s", a);
            out->val[k].list[out->val[k].n_list++] = v;
        } else if ((o->kind == KSV_OPT_LONG || o->kind == KSV_OPT_DOUBLE) &&
                   !number_ok(o, v, &out->val[k].number)) {
            return ksv_usage_text(cli, o->bad_value, NULL);
        }
    }
    if (out->n_pos < e->min_args)
        return ksv_usage_text(cli, e->too_few ? e->too_few : "missing arguments", NULL);
    return 0;
}

static int opt_index(const ksv_args *a, const char *name)
{
    return find_opt(a->entry, name);
}

bool ksv_args_has(const ksv_args *a, const char *name)
{
    int k = opt_index(a, name);
    return k >= 0 && a->val[k].set;
}

const char *ksv_args_get(const ksv_args *a, const char *name)
{
    int k = opt_index(a, name);
    return k >= 0 && a->val[k].set ? a->val[k].text : NULL;
}

double ksv_args_number(const ksv_args *a, const char *name, double dflt)
{
    int k = opt_index(a, name);
    return k >= 0 && a->val[k].set ? a->val[k].number : dflt;
}

const char *const *ksv_args_list(const ksv_args *a, const char *name, size_t *n)
{
    int k = opt_index(a, name);
    *n = k >= 0 ? a->val[k].n_list : 0;
    return k >= 0 ? a->val[k].list : NULL;
}

const char *ksv_args_pos(const ksv_args *a, int i)
{
    return i >= 0 && i < a->n_pos ? a->pos[i] : NULL;
}
