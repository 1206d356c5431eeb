/* wordstats: {text} -> {words, characters, lines, longest_word}. Characters are code points. */
#include "vak.h"

static int is_space(unsigned char c) { return c == ' ' || c == '\n' || c == '\t' || c == '\r' || c == '\f' || c == '\v'; }

VAK_EXPORT(execute) {
    vak_str raw, text;
    if (!vak_json_get(vak_input, "text", &raw) || !vak_json_string_raw(raw, &text))
        return vak_return_error("text must be a string");
    uint64_t words = 0, chars = 0, lines = text.len ? 1 : 0;
    uint32_t best_start = 0, best_len = 0, cur_start = 0, cur_len = 0;
    int in_word = 0;
    for (uint32_t i = 0; i < text.len; i++) {
        unsigned char c = (unsigned char)text.ptr[i];
        /* JSON escapes: \n counts as a newline, other escapes as one character */
        if (c == '\\' && i + 1 < text.len) {
            char e = text.ptr[i + 1];
            int space = (e == 'n' || e == 't' || e == 'r');
            if (e == 'n') lines++;
            uint32_t skip = (e == 'u') ? 5 : 1;
            chars++;
            if (space) { if (in_word && cur_len > best_len) { best_start = cur_start; best_len = cur_len; } in_word = 0; }
            else { if (!in_word) { words++; in_word = 1; cur_start = i; cur_len = 0; } cur_len += skip + 1; }
            i += skip;
            continue;
        }
        if ((c & 0xC0) != 0x80) chars++;
        if (is_space(c)) {
            if (in_word && cur_len > best_len) { best_start = cur_start; best_len = cur_len; }
            in_word = 0;
        } else {
            if (!in_word) { words++; in_word = 1; cur_start = i; cur_len = 0; }
            cur_len++;
        }
    }
    if (in_word && cur_len > best_len) { best_start = cur_start; best_len = cur_len; }
    vak_buf out = vak_buf_new(128);
    vak_buf_lit(&out, "{\"words\":"); vak_buf_u64(&out, words);
    vak_buf_lit(&out, ",\"characters\":"); vak_buf_u64(&out, chars);
    vak_buf_lit(&out, ",\"lines\":"); vak_buf_u64(&out, lines);
    vak_buf_lit(&out, ",\"longest_word\":\"");
    vak_buf_put(&out, text.ptr + best_start, best_len);   /* already JSON-escaped source */
    vak_buf_lit(&out, "\"}");
    return vak_buf_return(&out);
}
