#!/usr/bin/env python3
"""Lists the longest Rust functions of the tree (outside tests), longest first.

Usage: scripts/longest-fns.py [--min N] [--all] [PATH ...]
A function runs from its `fn` line to its closing brace; test modules (`#[cfg(test)]`), `tests/`
folders, benches, examples and fuzz targets are left out unless --all is given. Braces inside
strings, chars and comments are ignored.
"""
import re, sys, pathlib, subprocess

FN = re.compile(r'^\s*(pub(\([^)]*\))?\s+)?(const\s+)?(async\s+)?(unsafe\s+)?(extern\s+"[^"]*"\s+)?fn\s+(\w+)')

def strip(line, state):
    """Returns the line's code with strings/comments blanked; state carries block comments."""
    out, i, n = [], 0, len(line)
    while i < n:
        if state['block']:
            j = line.find('*/', i)
            if j < 0:
                return ''.join(out)
            state['block'] = False; i = j + 2; continue
        c = line[i]
        if line.startswith('//', i):
            break
        if line.startswith('/*', i):
            state['block'] = True; i += 2; continue
        if c == '"':
            j = i + 1
            while j < n and line[j] != '"':
                j += 2 if line[j] == '\\' else 1
            i = j + 1; continue
        m = re.match(r"'(\\.|[^\\'])'", line[i:])
        if m:
            i += len(m.group(0)); continue
        out.append(c); i += 1
    return ''.join(out)

def functions(path):
    lines = path.read_text(errors='replace').splitlines()
    state = {'block': False}
    code = [strip(l, state) for l in lines]
    res, skip_depth, depth, stack = [], None, 0, []
    pending_test = False
    for no, (raw, c) in enumerate(zip(lines, code), 1):
        if '#[cfg(test)]' in raw:
            pending_test = True
        m = FN.match(c)
        if m and skip_depth is None:
            stack.append((m.group(7), no, depth))
        for ch in c:
            if ch == '{':
                if pending_test and skip_depth is None:
                    skip_depth = depth
                    # a #[cfg(test)] item: drop fns opened on this line
                    while stack and stack[-1][1] == no:
                        stack.pop()
                pending_test = False
                depth += 1
            elif ch == '}':
                depth -= 1
                if skip_depth is not None and depth == skip_depth:
                    skip_depth = None
                while stack and stack[-1][2] == depth and skip_depth is None:
                    name, start, _ = stack.pop()
                    res.append((no - start + 1, f'{path}:{start}', name))
            elif ch == ';' and stack and stack[-1][2] == depth and stack[-1][1] == no:
                stack.pop()  # a declaration without body
        if c.strip() and not c.strip().startswith('#') and '{' not in c and pending_test and not m:
            pass
    return res

def main():
    args, minimum, all_files = sys.argv[1:], 0, False
    if '--min' in args:
        k = args.index('--min'); minimum = int(args[k + 1]); del args[k:k + 2]
    if '--all' in args:
        args.remove('--all'); all_files = True
    roots = args or ['.']
    files = subprocess.run(['git', 'ls-files', '--cached', '--others', '--exclude-standard', '--', *roots],
                           capture_output=True, text=True).stdout.split()
    out = []
    for f in files:
        if not f.endswith('.rs'):
            continue
        if not all_files and re.search(r'(^|/)(tests|benches|examples|fuzz)/|(^|/)tests\.rs$', f):
            continue
        out += functions(pathlib.Path(f))
    for length, where, name in sorted(out, reverse=True):
        if length >= minimum:
            print(f'{length:5} {where} {name}')

main()
