/* calculator: {operation: add|subtract|multiply|divide, a, b} -> {result} | {error}. */
#include "vak.h"

VAK_EXPORT(execute) {
    vak_str op_raw, a_raw, b_raw, op;
    double a, b, r;
    if (!vak_json_get(vak_input, "operation", &op_raw) || !vak_json_string_raw(op_raw, &op))
        return vak_return_error("operation must be a string");
    if (!vak_json_get(vak_input, "a", &a_raw) || !vak_json_number(a_raw, &a))
        return vak_return_error("a must be a number");
    if (!vak_json_get(vak_input, "b", &b_raw) || !vak_json_number(b_raw, &b))
        return vak_return_error("b must be a number");
    if (vak_str_eq(op, "add")) r = a + b;
    else if (vak_str_eq(op, "subtract")) r = a - b;
    else if (vak_str_eq(op, "multiply")) r = a * b;
    else if (vak_str_eq(op, "divide")) {
        if (b == 0.0) return vak_return_error("division by zero");
        r = a / b;
    } else return vak_return_error("unknown operation");
    vak_buf out = vak_buf_new(64);
    vak_buf_lit(&out, "{\"result\":");
    if (!vak_buf_number(&out, r)) return vak_return_error("result is not a finite number");
    vak_buf_char(&out, '}');
    return vak_buf_return(&out);
}
