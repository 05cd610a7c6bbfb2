/* cmd_describe.c: `ksv describe MODEL`: spec, revisions, traffic and nodes of one model. */
#include <stdio.h>
#include <string.h>

#include "cli/cli.h"
#include "common/uri_redact.h"

/* Every URI in the stored spec (its storageUri, a runtime's arguments...) in its display
 * form: a presigned URL's signature or a password stays in the database. */
static void redact_uris(json_object *o)
{
    if (json_object_is_type(o, json_type_string)) {
        if (strstr(json_object_get_string(o), "://")) {
            char shown[KSV_URI_SHOWN_MAX];
            ksv_uri_redact(shown, sizeof shown, json_object_get_string(o));
            json_object_set_string(o, shown);
        }
    } else if (json_object_is_type(o, json_type_object)) {
        json_object_object_foreach(o, key, val)
        {
            (void)key;
            redact_uris(val);
        }
    } else if (json_object_is_type(o, json_type_array)) {
        for (size_t i = 0; i < json_object_array_length(o); i++)
            redact_uris(json_object_array_get_idx(o, i));
    }
}

static int print_describe(ksv_cli *cli, ksv_ctl *ctl, const char *model,
                          const ksv_model_view *v)
{
    (void)ctl;
    (void)model;
    json_object *spec = json_tokener_parse(v->model.spec_json);
    redact_uris(spec);
    if (cli->json) {
        json_object *o = ksv_cli_view_json(v);
        json_object_object_add(o, "spec", spec);
        ksv_cli_print_json(o);
        json_object_put(o);
        return 0;
    }
    char nodes[256], split[256];
    ksv_cli_nodes_text(&v->model, nodes, sizeof nodes);
    ksv_cli_split_text(v, split, sizeof split);
    printf("Name:       %s\nNamespace:  %s\nNodes:      %s\nTraffic:    %s\n\nRevisions:\n",
           v->model.name, v->model.ns, nodes, split[0] ? split : "-");
    ksv_cli_print_revisions(cli, v);
    /* A spec that does not parse is not printed: its URIs could not be redacted. */
    printf("\nSpec:\n%s\n", spec ? json_object_to_json_string_ext(spec, JSON_C_TO_STRING_PRETTY |
                                                                      JSON_C_TO_STRING_NOSLASHESCAPE)
                                 : "(unreadable)");
    json_object_put(spec);
    return 0;
}

static int describe(ksv_cli *cli, const ksv_args *a)
{
    return ksv_cli_with_view(cli, ksv_args_pos(a, 0), print_describe);
}

static const ksv_cmd_entry describe_entries[] = {
    {.min_args = 1, .max_args = 1, .too_few = "describe needs MODEL",
     .too_many = "describe needs MODEL", .exec = describe},
    {0},
};

const ksv_cmd_group ksv_cmd_group_describe = {
    .name = "describe",
    .usage = "describe MODEL",
    .entries = describe_entries,
};
