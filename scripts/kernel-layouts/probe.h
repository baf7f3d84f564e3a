/*
 * Markers shared by the kernel-layout probes (scripts/kernel-layouts.sh).
 *
 * A probe is compiled to assembly only (x86_64-w64-mingw32-gcc -S): it is never assembled,
 * linked or run. Every marker is an asm statement whose immediate operand is a compile-time
 * constant (a sizeof, an offsetof or a macro/enum value), so the compiler writes the value
 * verbatim into the .s file on a line of the form
 *
 *     @KL size   <STRUCT> $<bytes>
 *     @KL field  <STRUCT> <dotted.path> $<byte offset>
 *     @KL const  <NAME> $<value>
 *     @KL source <NAME> <text>            (documented.c only: where a definition comes from)
 *     @KL corrects <NAME> <SET> <HEADER> $<value> <how>
 *                                         (documented.c only: SET's HEADER defines NAME as
 *                                          value, which the documentation contradicts)
 *
 * Bit-fields have no offsetof: KL_BITFIELD (file scope) emits a constant object of the
 * structure with only that bit-field set to all ones; the script reads the object's bytes
 * from the .rdata directives in the .s file and records the first non-zero byte.
 */
#ifndef ODXFLT_KERNEL_LAYOUTS_PROBE_H
#define ODXFLT_KERNEL_LAYOUTS_PROBE_H

#define KL_SIZE(type) \
    __asm__ volatile("\n@KL size " #type " %0" : : "i"(sizeof(type)))

#define KL_FIELD(type, path) \
    __asm__ volatile("\n@KL field " #type " " #path " %0" : : "i"(__builtin_offsetof(type, path)))

/* Integer macro or enumerator; the script rejects negative values. */
#define KL_CONST(name) \
    __asm__ volatile("\n@KL const " #name " %0" : : "i"((long long)(name)))

/* NTSTATUS: recorded as its unsigned 32-bit reinterpretation. */
#define KL_STATUS(name) \
    __asm__ volatile("\n@KL const " #name " %0" : : "i"((long long)(unsigned int)(name)))

/* Where a documented.c item (one no header set defines, or a correction) was taken from. */
#define KL_SOURCE(name, text) \
    __asm__ volatile("\n@KL source " #name " " text)

/*
 * A documented correction (documented.c only): the header set `set` (wine or mingw) defines
 * `name` in `header` (the file's base name) as `header_value`, which `how` explains (a string
 * literal, e.g. "FILE_ANY_ACCESS"), and the documentation says otherwise. The documented value
 * is the KL_CONST(name) of documented.c, with its KL_SOURCE. merge.pl records the documented
 * value and fails unless the header still says exactly header_value.
 */
#define KL_CORRECTS(name, set, header, header_value, how)                               \
    __asm__ volatile("\n@KL corrects " #name " " #set " " header " %0 " how            \
                     : : "i"((long long)(header_value)))

/* File scope. The label kl_bf__<STRUCT>__<FIELD> names the structure and the bit-field. */
#define KL_BITFIELD(type, field) \
    static const type kl_bf__##type##__##field __attribute__((used)) = { .field = -1 }

#endif
