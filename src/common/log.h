/* log.h: leveled log lines to stderr: "TIME LEVEL [request-id] message".
 * The level threshold is process configuration set once by main() before threads start. */
#ifndef KSV_COMMON_LOG_H
#define KSV_COMMON_LOG_H

typedef enum { KSV_LOG_DEBUG, KSV_LOG_INFO, KSV_LOG_WARN, KSV_LOG_ERROR } ksv_log_level;

/* Returns 0 and sets *out for "debug|info|warn|error", -1 otherwise. */
int ksv_log_parse_level(const char *name, ksv_log_level *out);
void ksv_log_set_level(ksv_log_level level);
/* request_id may be NULL. Never pass secrets. */
void ksv_log(ksv_log_level level, const char *request_id, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

#endif
