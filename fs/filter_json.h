/*
 * filter_json.h — the structured (JSON) form of a query filter, as `.json`
 * queries give it in "filter" (docs/filesystem.md, "Filters").
 *
 *   filter  := object            every member must pass (AND); {} = none
 *            | string            the text grammar of st_filter_parse
 *   member  := "KEY": scalar     user.KEY equals the scalar
 *            | "KEY": {OP: ARG, ...}   every OP must hold:
 *                  "=", "!=", "<", "<=", ">", ">=": scalar
 *                  "in": [scalar, ...]   (non-empty)
 *                  "exists": true | false
 *            | "$and": [filter, ...]   | "$or": [filter, ...]
 *            | "$not": filter
 *   scalar  := string | number | true | false   (numbers and booleans as
 *              their JSON text: 2020, 0.5, true)
 *
 * Keys starting with '$' are operators; a metadata key that starts with
 * '$' is reached through the string form ("filter": "'$k' = 1").
 */
#ifndef VECFS_FS_FILTER_JSON_H
#define VECFS_FS_FILTER_JSON_H

#include <jansson.h>
#include <stddef.h>

#include "store.h"

/*
 * Compiles filter JSON value v into *out (st_filter_free; NULL for {} or
 * an empty string). err (errcap bytes) gets one line saying why on error.
 * Returns 0, -EINVAL (not of the form above, nested over
 * ST_FILTER_DEPTH_MAX-ish 32 deep, over the filter's limits), -E2BIG (a
 * key or value over its limit, or the whole over ST_FILTER_TEXT_MAX),
 * -ENOMEM.
 */
int fsd_filter_json(json_t *v, st_filter **out, char *err, size_t errcap);

#endif /* VECFS_FS_FILTER_JSON_H */
