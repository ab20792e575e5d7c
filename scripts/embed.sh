#!/bin/sh
# embed.sh FILE NAME: a C file that holds FILE's bytes as "const unsigned char NAME[]" and
# its length as "const size_t NAME_len", so that serve needs no file at run time. The
# Makefile runs it when FILE changes (docs/openapi.json -> build/gen/acct_openapi_doc.c).
set -e
file=$1
name=$2
printf '/* %s - made from %s by scripts/embed.sh: edit that file, not this one. */\n' \
	"$(basename "$3")" "$file"
printf '#include "account/acct_openapi.h"\n\n'
printf 'const unsigned char %s[] = {\n' "$name"
od -An -v -tx1 "$file" | sed -e 's/ \([0-9a-f][0-9a-f]\)/0x\1,/g' -e 's/^/\t/'
printf '};\nconst size_t %s_len = sizeof(%s);\n' "$name" "$name"
