#!/bin/sh
# Generates the "stubs" both services serve: one line per schema entry.
set -e
mkdir -p generated
sed 's/^/stub: /' schema/api.txt > generated/stubs.txt
echo "generated $(wc -l < generated/stubs.txt) stubs"
