#!/usr/bin/env bash
# Prints the dependency graph between rollbook's top-level modules (src/<top>/ or src/<top>.rs):
# one line "from -> to" for every top-level module that names `crate::<to>` in its source
# (use lines, paths and re-exports alike; comments and doc lines are ignored), then every cycle
# found. Exits 1 when the graph has a cycle, 0 otherwise. Usage: scripts/module-graph.sh [src-dir]
set -euo pipefail
src="${1:-$(dirname "$0")/../src}"
cd "$src"

tops=()
for entry in *; do
  case "$entry" in
    lib.rs | main.rs) ;;
    *.rs) tops+=("${entry%.rs}") ;;
    *) [ -d "$entry" ] && tops+=("$entry") ;;
  esac
done

edges=()
for from in "${tops[@]}"; do
  files=()
  [ -d "$from" ] && while IFS= read -r f; do files+=("$f"); done < <(find "$from" -name '*.rs' | sort)
  [ -f "$from.rs" ] && files+=("$from.rs")
  [ "${#files[@]}" -eq 0 ] && continue
  # Strip line comments (including doc comments), then take the first path segment after every
  # `crate::`, and in `crate::{a, b::{c, d}}` groups the segments at the group's top level (a, b).
  used=$(sed -e 's://.*$::' "${files[@]}" | perl -0777 -ne '
    while (/crate::(\{|[a-z_][a-z0-9_]*)/g) {
      if ($1 ne "{") { print "$1\n"; next }
      my ($depth, $start) = (1, 1);
      while ($depth > 0 && /\G(.)/gs) {
        my $c = $1;
        if ($c eq "{") { $depth++ } elsif ($c eq "}") { $depth-- } elsif ($c eq ",") { $start = 1 if $depth == 1; next }
        elsif ($start && $depth == 1 && $c =~ /[a-z_]/) { my $rest = /\G([a-z0-9_]*)/gc ? $1 : ""; print "$c$rest\n"; $start = 0 }
        elsif ($c !~ /\s/) { $start = 0 if $depth == 1 }
      }
    }' | sort -u)
  for to in $used; do
    [ "$to" = "$from" ] && continue
    for t in "${tops[@]}"; do
      if [ "$t" = "$to" ]; then edges+=("$from $to"); fi
    done
  done
done

for e in "${edges[@]}"; do echo "${e% *} -> ${e#* }"; done

# Cycles: for each pair reachable both ways, report it (transitive closure by repeated passes).
declare -A reach=()
for e in "${edges[@]}"; do reach["$e"]=1; done
changed=1
while [ "$changed" -eq 1 ]; do
  changed=0
  for a in "${tops[@]}"; do for b in "${tops[@]}"; do
    [ -n "${reach["$a $b"]:-}" ] || continue
    for c in "${tops[@]}"; do
      if [ -n "${reach["$b $c"]:-}" ] && [ -z "${reach["$a $c"]:-}" ]; then
        reach["$a $c"]=1; changed=1
      fi
    done
  done; done
done
cycles=0
for a in "${tops[@]}"; do for b in "${tops[@]}"; do
  if [[ "$a" < "$b" ]] && [ -n "${reach["$a $b"]:-}" ] && [ -n "${reach["$b $a"]:-}" ]; then
    echo "cycle: $a <-> $b"; cycles=$((cycles + 1))
  fi
done; done
if [ "$cycles" -gt 0 ]; then
  echo "$cycles cycle(s) between top-level modules" >&2
  exit 1
fi
echo "no cycles between top-level modules"
