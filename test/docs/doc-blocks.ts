/**
 * The code blocks of the docs that are marked to run. A block is marked by an HTML comment on the
 * line right before its fence (invisible on GitHub):
 *
 *   <!-- doc-check: file=server_config.yml session=quickstart -->   write the block to that file
 *   <!-- doc-check: run session=quickstart -->                       run it with bash -euo pipefail
 *   <!-- doc-check: background wait=http://127.0.0.1:8443/health --> start it, wait until its port listens
 *   <!-- doc-check: skip="why it cannot run as pasted" -->         a shell block not run, with the reason
 *
 * `session=NAME` shares one folder between blocks (of any doc, in the order docs are checked);
 * without it a block gets the folder of its doc. `cwd=checkout` runs in this checkout instead.
 * `expect=TEXT` requires TEXT in the block's output. A background block stops at the end of its
 * doc, or with `until=DOC` at the end of that later doc; a run block marked `stop` stops the
 * background blocks of its doc once it has run.
 * @module
 */
import { readFileSync } from 'node:fs'

export interface DocBlock {
  doc: string
  line: number
  lang: string
  body: string
  action: 'file' | 'run' | 'background' | 'skip'
  file?: string
  session: string
  cwd: 'session' | 'checkout'
  wait?: string
  expect?: string
  until: string
  stop: boolean
}

const MARK = /^<!--\s*doc-check:\s*(.*?)\s*-->\s*$/
const FENCE = /^(```+|~~~+)\s*([\w-]*)\s*$/

function attributes(text: string): Map<string, string> {
  const attrs = new Map<string, string>()
  for (const m of text.matchAll(/(\w+)(?:=("[^"]*"|\S+))?/g)) attrs.set(m[1]!, (m[2] ?? '').replace(/^"|"$/g, ''))
  return attrs
}

/** The marked blocks of `doc` (a path relative to the checkout). Throws on a mark without a block. */
export function markedBlocks(root: string, doc: string): DocBlock[] {
  const lines = readFileSync(`${root}/${doc}`, 'utf8').split('\n')
  const blocks: DocBlock[] = []
  for (let i = 0; i < lines.length; i++) {
    const mark = MARK.exec(lines[i]!)
    if (!mark) continue
    const fence = FENCE.exec(lines[i + 1] ?? '')
    if (!fence) throw new Error(`${doc}:${i + 1}: a doc-check mark must be followed by a code fence`)
    const end = lines.findIndex((l, j) => j > i + 1 && l.trim() === fence[1])
    if (end < 0) throw new Error(`${doc}:${i + 2}: code fence never closed`)
    const attrs = attributes(mark[1]!)
    if (attrs.has('skip') && attrs.get('skip') === '') throw new Error(`${doc}:${i + 1}: skip needs a reason: skip="…"`)
    const action = attrs.has('skip') ? 'skip' : attrs.has('file') ? 'file' : attrs.has('background') ? 'background' : 'run'
    blocks.push({
      doc,
      line: i + 2,
      lang: fence[2] ?? '',
      body: lines.slice(i + 2, end).join('\n') + '\n',
      action,
      ...(attrs.get('file') ? { file: attrs.get('file')! } : {}),
      session: attrs.get('session') || doc,
      cwd: attrs.get('cwd') === 'checkout' ? 'checkout' : 'session',
      ...(attrs.get('wait') ? { wait: attrs.get('wait')! } : {}),
      ...(attrs.get('expect') ? { expect: attrs.get('expect')! } : {}),
      until: attrs.get('until') || doc,
      stop: attrs.has('stop'),
    })
    i = end
  }
  return blocks
}

/** Line numbers of shell blocks (bash, sh) in `doc` that carry no doc-check mark at all. */
export function unmarkedShellBlocks(root: string, doc: string): number[] {
  const lines = readFileSync(`${root}/${doc}`, 'utf8').split('\n')
  const unmarked: number[] = []
  let open: string | undefined
  for (let i = 0; i < lines.length; i++) {
    const fence = FENCE.exec(lines[i]!)
    if (open !== undefined) {
      if (lines[i]!.trim() === open) open = undefined
      continue
    }
    if (!fence) continue
    open = fence[1]
    if (['bash', 'sh', 'shell'].includes(fence[2] ?? '') && !MARK.test(lines[i - 1] ?? '')) unmarked.push(i + 1)
  }
  return unmarked
}
