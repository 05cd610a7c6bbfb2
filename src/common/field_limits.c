/* field_limits.c: the DNS-label check behind every name limit (field_limits.h). */
#include "common/field_limits.h"

#include <string.h>

const char *ksv_dns_label_problem(const char *s, size_t max)
{
    if (!s || !*s)
        return "must not be empty";
    size_t len = strlen(s);
    if (len > max) {
        /* Static phrases for the limits in use: no buffer to own. */
#define KSV_STR_(x) #x
#define KSV_STR(x) KSV_STR_(x)
        if (max == KSV_MODEL_NAME_MAX)
            return "is too long: at most " KSV_STR(KSV_MODEL_NAME_MAX) " characters, so the "
                   "revision name NAME-00001 fits the " KSV_STR(KSV_DNS_LABEL_MAX)
                   " of a DNS label";
        return "is too long: a DNS-1123 label has at most " KSV_STR(KSV_DNS_LABEL_MAX)
               " characters";
    }
    for (size_t k = 0; k < len; k++) {
        char c = s[k];
        bool alnum = (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9');
        if (!alnum && c != '-')
            return "is not a DNS-1123 label: use lowercase letters, digits and '-'";
        if (!alnum && (k == 0 || k == len - 1))
            return "is not a DNS-1123 label: it must start and end with a letter or digit";
    }
    return NULL;
}
