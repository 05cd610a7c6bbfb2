/* cmd_describe.c: `ksv describe MODEL`: spec, revisions, traffic and nodes of one model. */
#include <stdio.h>

#include "cli/cli.h"

static int print_describe(ksv_cli *cli, ksv_ctl *ctl, const char *model,
                          const ksv_model_view *v)
{
    (void)ctl;
    (void)model;
    json_object *spec = json_tokener_parse(v->model.spec_json);
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
    printf("\nSpec:\n%s\n", spec ? json_object_to_json_string_ext(spec, JSON_C_TO_STRING_PRETTY |
                                                                      JSON_C_TO_STRING_NOSLASHESCAPE)
                                 : v->model.spec_json);
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
