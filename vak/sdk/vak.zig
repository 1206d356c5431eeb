//! vak.zig — the VAK guest SDK for Zig (the same ABI as vak.h; see docs/ABI.md).
//!
//! Exports the `vak_alloc` bump allocator, and offers input/output helpers, a
//! tiny JSON reader and one wrapper per host function of vak/host/catalog.py.
//! `vak skill build` (vak/skillbuild.py) builds a skill's `<module>.zig` with this file as
//! module `vak`:
//!
//!     const vak = @import("vak");
//!     export fn execute(ptr: u32, len: u32) u64 {
//!         return vak.pack("{\"ok\":true}");
//!     }

var heap_top: usize = 0;
extern var __heap_base: u8;

/// The allocator the host calls for the input and host replies; 0 = cannot grow.
export fn vak_alloc(size: u32) u32 {
    if (heap_top == 0) heap_top = @intFromPtr(&__heap_base);
    const start = (heap_top + 7) & ~@as(usize, 7);
    const end: u64 = @as(u64, start) + size;
    if (end > 0xFFFF_FFFF) return 0;
    const have: u64 = @as(u64, @wasmMemorySize(0)) * 65536;
    if (end > have) {
        const pages = (end - have + 65535) / 65536;
        if (@wasmMemoryGrow(0, @intCast(pages)) < 0) return 0;
    }
    heap_top = @intCast(end);
    return @intCast(start);
}

/// Allocate or trap.
pub fn alloc(size: u32) []u8 {
    const p = vak_alloc(size);
    if (p == 0 and size != 0) @trap();
    return @as([*]u8, @ptrFromInt(p))[0..size];
}

/// The input JSON of an export called with (ptr, len).
pub fn input(ptr: u32, len: u32) []const u8 {
    return @as([*]const u8, @ptrFromInt(ptr))[0..len];
}

/// Output JSON packed as (ptr << 32) | len.
pub fn pack(out: []const u8) u64 {
    return (@as(u64, @intFromPtr(out.ptr)) << 32) | out.len;
}

fn unpack(r: u64) []const u8 {
    const p: u32 = @truncate(r >> 32);
    const n: u32 = @truncate(r);
    return @as([*]const u8, @ptrFromInt(p))[0..n];
}

// ---------------------------------------------------------------- JSON reader
fn ws(s: []const u8, start: usize) usize {
    var i = start;
    while (i < s.len and (s[i] == ' ' or s[i] == '\n' or s[i] == '\t' or s[i] == '\r')) i += 1;
    return i;
}

/// End (exclusive) of the JSON value at `start`, or null if malformed.
fn skip(s: []const u8, start: usize) ?usize {
    var i = start;
    if (i >= s.len) return null;
    const c = s[i];
    if (c == '"') {
        i += 1;
        while (i < s.len) : (i += 1) {
            if (s[i] == '\\') {
                i += 1;
            } else if (s[i] == '"') return i + 1;
        }
        return null;
    }
    if (c == '{' or c == '[') {
        var depth: usize = 0;
        while (i < s.len) : (i += 1) {
            const d = s[i];
            if (d == '"') {
                i = (skip(s, i) orelse return null) - 1;
            } else if (d == '{' or d == '[') {
                depth += 1;
            } else if (d == '}' or d == ']') {
                depth -= 1;
                if (depth == 0) return i + 1;
            }
        }
        return null;
    }
    while (i < s.len and s[i] != ',' and s[i] != '}' and s[i] != ']' and s[i] != ' ' and
        s[i] != '\n' and s[i] != '\t' and s[i] != '\r') i += 1;
    return if (i > start) i else null;
}

/// The raw JSON value of top-level `key` in object `obj`.
pub fn get(obj: []const u8, key: []const u8) ?[]const u8 {
    var i = ws(obj, 0);
    if (i >= obj.len or obj[i] != '{') return null;
    i = ws(obj, i + 1);
    while (i < obj.len and obj[i] == '"') {
        const kend = skip(obj, i) orelse return null;
        const k = obj[i + 1 .. kend - 1];
        i = ws(obj, kend);
        if (i >= obj.len or obj[i] != ':') return null;
        i = ws(obj, i + 1);
        const vend = skip(obj, i) orelse return null;
        if (eql(k, key)) return obj[i..vend];
        i = ws(obj, vend);
        if (i < obj.len and obj[i] == ',') i = ws(obj, i + 1) else break;
    }
    return null;
}

/// A JSON string value without its quotes (escapes left as written).
pub fn stringRaw(v: []const u8) ?[]const u8 {
    if (v.len < 2 or v[0] != '"' or v[v.len - 1] != '"') return null;
    return v[1 .. v.len - 1];
}

pub fn eql(a: []const u8, b: []const u8) bool {
    if (a.len != b.len) return false;
    for (a, b) |x, y| if (x != y) return false;
    return true;
}

// ---------------------------------------------------------------- host functions
extern "vak" fn log(ptr: u32, len: u32) u64;
extern "vak" fn clock_now(ptr: u32, len: u32) u64;
extern "vak" fn random_bytes(ptr: u32, len: u32) u64;
extern "vak" fn fs_read(ptr: u32, len: u32) u64;
extern "vak" fn fs_write(ptr: u32, len: u32) u64;
extern "vak" fn fs_list(ptr: u32, len: u32) u64;
extern "vak" fn http_request(ptr: u32, len: u32) u64;
extern "vak" fn kv_get(ptr: u32, len: u32) u64;
extern "vak" fn kv_put(ptr: u32, len: u32) u64;
extern "vak" fn kv_delete(ptr: u32, len: u32) u64;
extern "vak" fn kv_list(ptr: u32, len: u32) u64;
extern "vak" fn secret_get(ptr: u32, len: u32) u64;

fn call(comptime f: fn (u32, u32) callconv(.c) u64, args: []const u8) []const u8 {
    return unpack(f(@intCast(@intFromPtr(args.ptr)), @intCast(args.len)));
}

pub fn hostLog(args: []const u8) []const u8 { return call(log, args); }
pub fn hostClockNow(args: []const u8) []const u8 { return call(clock_now, args); }
pub fn hostRandomBytes(args: []const u8) []const u8 { return call(random_bytes, args); }
pub fn hostFsRead(args: []const u8) []const u8 { return call(fs_read, args); }
pub fn hostFsWrite(args: []const u8) []const u8 { return call(fs_write, args); }
pub fn hostFsList(args: []const u8) []const u8 { return call(fs_list, args); }
pub fn hostHttpRequest(args: []const u8) []const u8 { return call(http_request, args); }
pub fn hostKvGet(args: []const u8) []const u8 { return call(kv_get, args); }
pub fn hostKvPut(args: []const u8) []const u8 { return call(kv_put, args); }
pub fn hostKvDelete(args: []const u8) []const u8 { return call(kv_delete, args); }
pub fn hostKvList(args: []const u8) []const u8 { return call(kv_list, args); }
pub fn hostSecretGet(args: []const u8) []const u8 { return call(secret_get, args); }
