/* sanitize.h: the one filter every string from outside (a node's reply, a file, a request)
 * passes before a terminal or a log line sees it.
 *
 * A hostile node or manifest could otherwise put escape sequences in a version string or an
 * error (ESC]0;title BEL, ESC[2J, a C1 CSI) and rewrite the operator's terminal, or put a
 * newline in a message and forge a log line. The filter replaces, with '?':
 *   - C0 controls (0x00-0x1F, tab and newline included) and DEL (0x7F),
 *   - C1 controls encoded in UTF-8 (U+0080-U+009F),
 *   - the line and paragraph separators and the bidirectional overrides and isolates
 *     (U+2028-U+202E, U+2066-U+2069), which can
 *     make a terminal show text in an order other than the bytes',
 *   - every byte of ill-formed UTF-8.
 * Printable UTF-8 passes unchanged. The output is never longer than the input, so it can
 * work in place. */
#ifndef KSV_COMMON_SANITIZE_H
#define KSV_COMMON_SANITIZE_H

#include <stdbool.h>
#include <stddef.h>

/* Copies src into dst (cap bytes, always NUL-terminated when cap > 0), filtered; a cut
 * never splits a UTF-8 sequence. Returns the length written. src may equal dst. */
size_t ksv_sanitize_copy(char *dst, size_t cap, const char *src);
/* Filters s in place; returns s. */
char *ksv_sanitize(char *s);
/* True when s would pass unchanged. */
bool ksv_is_terminal_safe(const char *s);

#endif
