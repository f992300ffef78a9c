"""Duplicates and leakage: exact copies, perceptual near-duplicates, semantic look-alikes.

Every relation between two images is an edge: the same bytes, the same decoded pixels, a
pHash distance in the duplicate band, one in the review band, or (with --clip) a CLIP cosine
above the threshold. Images of an already accepted dataset (--against) join the graph as
nodes that are always kept. Then:

- removal: groups joined by exact or duplicate-band edges keep their best member (no other
  errors, most pixels, earliest, richest caption); the others are dropped;
- review: review-band and semantic edges put the less preferred image in front of a person;
- leakage: groups joined by any edge must not span cultures (error), categories (warning)
  or train and test (error on the test side).
"""

from __future__ import annotations

import hashlib
import math
from collections import defaultdict
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

import numpy as np

from ccub.checks.registry import CheckFamily, CheckSpec, Context
from ccub.dedup.search import EXACT_LIMIT, LSH_BITS, LSH_TABLES, connected_groups, pairs_between, pairs_within
from ccub.imaging.analyze import full_pixel_digest
from ccub.imaging.decode import DecodeRefused
from ccub.imaging.phash import VARIANTS, WORDS
from ccub.records import Finding, Record
from ccub.safeio import Root, UnsafeFile

REMOVAL_KINDS = ("same_file", "same_pixels", "near")
# Relations between the pixels themselves; CLIP's "semantic" look-alikes are only ever
# put in front of a person (different photos of one dish are welcome).
PIXEL_KINDS = (*REMOVAL_KINDS, "near_review")


@dataclass
class Node:
    """An image in the duplicate graph: a record of this run, or one already accepted."""

    key: str
    image: str
    culture: str | None
    category: str | None
    split: str
    pixels: int
    created_at: str | None
    caption: str
    record: Record | None = None  # None for images of the --against dataset


@dataclass
class Edge:
    a: int
    b: int
    kind: str  # same_file, same_pixels, near, near_review, semantic
    value: float  # Hamming distance in bits, or cosine


@dataclass
class Graph:
    nodes: list[Node] = field(default_factory=list)
    edges: list[Edge] = field(default_factory=list)

    def components(self, kinds: Iterable[str]) -> list[list[int]]:
        kinds = set(kinds)
        chosen = [e for e in self.edges if e.kind in kinds]
        labels = connected_groups(len(self.nodes), np.array([e.a for e in chosen], dtype=np.int64),
                                  np.array([e.b for e in chosen], dtype=np.int64))
        members: dict[int, list[int]] = defaultdict(list)
        for node, label in enumerate(labels):
            members[int(label)].append(node)
        return [m for m in members.values() if len(m) > 1]


def _edge_description(edge: Edge) -> str:
    if edge.kind == "semantic":
        return f"CLIP cosine {edge.value:.3f}"
    if edge.kind in ("near", "near_review"):
        return f"pHash distance {int(edge.value)}/256"
    return "same bytes" if edge.kind == "same_file" else "same pixels"


@dataclass
class Duplicates:
    # pHash distances are out of 256 bits (8 rotations/mirrorings, margins trimmed). Up to
    # near_max_distance a copy is a duplicate and all but the best member are dropped; up to
    # review_max_distance (5% crops, heavy edits) a person decides.
    near_max_distance: int = 20
    review_max_distance: int = 64
    trim_tolerance: float = 12.0
    trim_max_fraction: float = 0.3
    # CLIP cosine for the optional semantic tier (--clip): review only, never removal.
    semantic_min_cosine: float = 0.95
    semantic_size: int = 224
    # --test-fraction: the seed of the stratified, group-preserving split.
    split_seed: int = 1024
    # The pHash search (ccub.dedup.search): exact up to exact_limit images, LSH above it with
    # lsh_tables tables of lsh_bits sampled bits. Recall at distance 64 is 0.37 with the default
    # tables; 530 tables give 0.95, for about 6.5x the LSH work.
    exact_limit: int = EXACT_LIMIT
    lsh_tables: int = LSH_TABLES
    lsh_bits: int = LSH_BITS


class DuplicateChecks(CheckFamily):
    name = "duplicates"
    specs = (
        CheckSpec("duplicate.same_file", "error", "Byte-identical to another image; the best "
                  "copy is kept.", "Remove the extra copy."),
        CheckSpec("duplicate.same_pixels", "error", "Same decoded pixels as another image (e.g. "
                  "a copy with metadata stripped); the best copy is kept.",
                  "Remove the extra copy."),
        CheckSpec("duplicate.near", "error", "A re-encoded, resized, rotated, mirrored, "
                  "bordered or lightly edited copy of another image (pHash over 8 rotations "
                  "and mirrorings, margins trimmed); the best copy is kept.",
                  "Remove the extra copy.", ("duplicates.near_max_distance",)),
        CheckSpec("duplicate.near_review", "review", "Probably the same photo (a crop or a "
                  "heavier edit): pHash distance in the review band.",
                  "Keep it only if it shows something the other image does not.",
                  ("duplicates.review_max_distance",)),
        CheckSpec("duplicate.semantic", "review", "Looks like another image to CLIP (--clip); "
                  "never removed automatically: different photos of one dish are welcome.",
                  "Keep it unless it is the same photo.", ("duplicates.semantic_min_cosine",)),
        CheckSpec("duplicate.label_conflict", "error", "The same image (exact, near or "
                  "semantic group) is filed under two cultures; every copy is rejected until a "
                  "person decides.", "Keep the image under the one culture it shows."),
        CheckSpec("duplicate.category_conflict", "warning", "The same image is filed under two "
                  "categories of one culture.", "Choose one category for it."),
        CheckSpec("duplicate.split_leak", "error", "A test image is a duplicate of a training "
                  "image: the benchmark would measure memory, not culture.",
                  "Remove it from the test split, or use --test-fraction to split by groups."),
        CheckSpec("duplicate.semantic_conflict", "review", "Images that only CLIP finds alike "
                  "(--clip) are filed under different cultures or categories, or split between "
                  "train and test; a person decides, nothing is rejected for it.",
                  "Check whether they are the same photo; if so keep one, under the right "
                  "labels.", ("duplicates.semantic_min_cosine",)),
    )

    def decide(self, records: list[Record], ctx: Context, status: Mapping[str, str]) -> Decisions:
        """The duplicate graph, the copies dropped and the findings. `status` (record key -> worst
        severity of the other checks) lets a group keep the copy with no other errors, so the
        pipeline runs this after every other check."""
        graph = build_graph(records, ctx)
        dropped, removal = _removal(graph, ctx, status)
        review = _review(graph, ctx, status, dropped)
        return Decisions(graph, dropped, [*removal, *review, *_leakage(graph, ctx)])


@dataclass
class Decisions:
    graph: Graph
    dropped: set[int]  # nodes (records of this run) removed as copies of a kept image
    findings: list[Finding]

    def groups(self) -> list[list[int]]:
        """Every group of related images (any kind of edge), as node indices."""
        return self.graph.components({e.kind for e in self.graph.edges})


def _node(record: Record, ctx: Context) -> Node:
    facts = ctx.facts[record.image]
    # Resolution of the picture itself: a copy with an added frame is not "larger".
    pixels = round(facts.width * facts.height * facts.content)
    return Node(record.key, record.image, record.culture, record.category, record.split,
                pixels, record.created_at, record.caption or "", record)


def build_graph(records: list[Record], ctx: Context) -> Graph:
    graph = Graph()
    for record in records:
        facts = ctx.facts.get(record.image) if record.image else None
        if facts is not None and facts.ok and facts.phash:
            graph.nodes.append(_node(record, ctx))
    own = len(graph.nodes)
    against = ctx.against
    if against is not None:
        graph.nodes.extend(
            Node(f"accepted:{image}", image, culture, category, split, pixels, None, "")
            for image, culture, category, split, pixels in zip(
                against.images, against.cultures, against.categories, against.splits,
                against.pixels, strict=True))
    _exact_edges(graph, ctx, own)
    cfg = ctx.cfg.duplicates
    hashes = np.stack([np.frombuffer(ctx.facts[n.image].phash, dtype=np.uint64)
                       .reshape(VARIANTS, WORDS) for n in graph.nodes[:own]]) if own else \
        np.zeros((0, VARIANTS, WORDS), np.uint64)
    search = {"exact_limit": cfg.exact_limit, "tables": cfg.lsh_tables, "bits": cfg.lsh_bits}
    i, j, d = pairs_within(hashes, cfg.review_max_distance, **search)
    if against is not None and own:
        ni, oj, od = pairs_between(hashes, against.hashes, cfg.review_max_distance, **search)
        i, j, d = np.concatenate([i, ni]), np.concatenate([j, oj + own]), np.concatenate([d, od])
    for a, b, dist in zip(i.tolist(), j.tolist(), d.tolist(), strict=True):
        kind = "near" if dist <= cfg.near_max_distance else "near_review"
        graph.edges.append(Edge(a, b, kind, dist))
    _semantic_edges(graph, ctx, own)
    return graph


def _semantic_edges(graph: Graph, ctx: Context, own: int) -> None:
    if not ctx.embeddings:
        return
    from ccub.semantic import similar_between, similar_pairs

    threshold = ctx.cfg.duplicates.semantic_min_cosine
    mine = [i for i in range(own) if graph.nodes[i].image in ctx.embeddings]
    vectors = np.stack([ctx.embeddings[graph.nodes[i].image] for i in mine]) if mine else None
    if vectors is None:
        return
    for a, b, cos in zip(*similar_pairs(vectors, threshold), strict=True):
        graph.edges.append(Edge(mine[a], mine[b], "semantic", float(cos)))
    against = ctx.against
    if against is not None and against.embeddings is not None and \
            against.clip_model == ctx.clip_model:
        for a, b, cos in zip(*similar_between(vectors, against.embeddings, threshold),
                             strict=True):
            graph.edges.append(Edge(mine[a], own + int(b), "semantic", float(cos)))


def _exact_edges(graph: Graph, ctx: Context, own: int) -> None:
    by_bytes: dict[str, list[int]] = defaultdict(list)
    by_pixels: dict[str, list[int]] = defaultdict(list)
    for index, node in enumerate(graph.nodes):
        if index < own:
            facts = ctx.facts[node.image]
            sha, pixels = facts.sha256, facts.pixel_key
        else:
            sha, pixels = ctx.against.sha256[index - own], ctx.against.pixel_keys[index - own]
        by_bytes[sha].append(index)
        by_pixels[pixels].append(index)
    for group in by_bytes.values():
        graph.edges += [Edge(group[0], other, "same_file", 0) for other in group[1:]]
    same_file = {frozenset((e.a, e.b)) for e in graph.edges}
    for group in by_pixels.values():
        for part in _confirm(group, graph, ctx, own):
            graph.edges += [Edge(part[0], other, "same_pixels", 0) for other in part[1:]
                            if frozenset((part[0], other)) not in same_file]


def _confirm(group: list[int], graph: Graph, ctx: Context, own: int) -> list[list[int]]:
    """Split a group keyed on reduced-scale JPEG decodes by full-resolution pixels."""
    scales = [ctx.facts[graph.nodes[i].image].decode_scale if i < own
              else ctx.against.decode_scales[i - own] for i in group]
    if len(group) < 2 or all(scale == 1 for scale in scales):
        return [group]
    exact: dict[str, list[int]] = defaultdict(list)
    for index in group:
        exact[_full_digest(graph.nodes[index], index < own, ctx)].append(index)
    return [members for key, members in exact.items() if key] + \
        [[member] for member in exact.get("", [])]


def _full_digest(node: Node, own: bool, ctx: Context) -> str:
    """Full-resolution pixel digest of the very file analysed ("" when it changed since)."""
    max_pixels = int(ctx.cfg.limits.max_megapixels * 1e6)
    try:
        if not own:
            data, _ = Root(ctx.against.root).read(node.image, int(ctx.cfg.limits.max_file_mb * 1e6))
            return full_pixel_digest(data, max_pixels)
        facts = ctx.facts[node.image]
        data, _ = ctx.root.read(node.image, facts.byte_size, expect=facts.identity)
        if hashlib.sha256(data).hexdigest() != facts.sha256:
            return ""
        return full_pixel_digest(data, max_pixels)
    except (UnsafeFile, DecodeRefused):
        return ""


def _preference(node: Node, status: Mapping[str, str]) -> tuple:
    """Already accepted first; then no errors, no review items, most pixels, earliest, richest
    caption."""
    status = status.get(node.key) if node.record else None
    # Resolutions within about 5% count as equal (margins are measured on a small copy).
    size = -int(math.log(max(node.pixels, 1), 1.05))
    return (node.record is not None, status == "error", status == "review", size,
            node.created_at or "~", -len(node.caption), node.key)


def _describe(node: Node) -> str:
    return node.image if node.record else f"{node.image} (already accepted)"


def _removal(graph: Graph, ctx: Context, status: Mapping[str, str]) -> tuple[set[int], list[Finding]]:
    dropped: set[int] = set()
    findings = []
    rank = {kind: i for i, kind in enumerate(REMOVAL_KINDS)}
    around: dict[int, list[Edge]] = defaultdict(list)
    for edge in graph.edges:
        if edge.kind in rank:
            around[edge.a].append(edge)
            around[edge.b].append(edge)
    for members in graph.components(REMOVAL_KINDS):
        nodes = [graph.nodes[m] for m in members]
        if len({n.culture or "?" for n in nodes}) > 1:
            continue  # a label conflict: reported by _leakage, nobody is kept
        keep = min(members, key=lambda m: _preference(graph.nodes[m], status))
        for member in members:
            node = graph.nodes[member]
            if member == keep or node.record is None:
                continue
            # The direct edge to the kept copy explains best; else the member's strongest.
            # Exact edges form a star per group, so "same bytes" is decided on the digests.
            direct = [e for e in around[member] if keep in (e.a, e.b)]
            edge = min(direct or around[member], key=lambda e: (rank[e.kind], e.value))
            if edge.kind != "same_file" and _sha256(graph, member, ctx) == \
                    _sha256(graph, keep, ctx):
                edge = Edge(member, keep, "same_file", 0)
            dropped.add(member)
            findings.append(Finding(f"duplicate.{edge.kind}", f"duplicate of {_describe(graph.nodes[keep])} "
                                    f"(kept; {_edge_description(edge)})", record=node.key, file=node.image))
    return dropped, findings


def _review(graph: Graph, ctx: Context, status: Mapping[str, str], dropped: set[int]) -> Iterable[Finding]:
    same_group = {node: index for index, members in enumerate(graph.components(REMOVAL_KINDS))
                  for node in members}
    seen: set[tuple[int, str]] = set()
    for edge in sorted(graph.edges, key=lambda e: (e.kind, -e.value if e.kind == "semantic"
                                                     else e.value)):
        if edge.kind not in ("near_review", "semantic"):
            continue
        if edge.a in dropped or edge.b in dropped:
            continue
        if edge.a in same_group and same_group[edge.a] == same_group.get(edge.b):
            continue  # already resolved by removal
        a, b = graph.nodes[edge.a], graph.nodes[edge.b]
        later, other = (edge.b, a) if _preference(a, status) <= _preference(b, status) else (edge.a, b)
        node = graph.nodes[later]
        if node.record is None or (later, edge.kind) in seen:
            continue
        seen.add((later, edge.kind))
        yield Finding(f"duplicate.{edge.kind}", f"looks like {_describe(other)} "
                      f"({_edge_description(edge)})", record=node.key, file=node.image)


def _sha256(graph: Graph, index: int, ctx: Context) -> str | None:
    own = len(graph.nodes) - (len(ctx.against) if ctx.against is not None else 0)
    if index < own:
        return ctx.facts[graph.nodes[index].image].sha256
    return ctx.against.sha256[index - own]


def _names(nodes: list[Node]) -> str:
    return ", ".join(_describe(n) for n in nodes[:6]) + (" …" if len(nodes) > 6 else "")


def _leakage(graph: Graph, ctx: Context) -> Iterable[Finding]:
    judged: set[int] = set()
    for members in graph.components(PIXEL_KINDS):
        found = list(_pixel_conflicts([graph.nodes[m] for m in members], ctx))
        if found:
            judged.update(members)
        yield from found
    for members in graph.components((*PIXEL_KINDS, "semantic")):
        nodes = [graph.nodes[m] for m in members]
        conflicts = _label_spread(nodes, ctx)
        if not conflicts:
            continue
        for member, node in zip(members, nodes, strict=True):
            if node.record is not None and member not in judged:
                yield Finding("duplicate.semantic_conflict", f"{'; '.join(conflicts)} among "
                              f"images CLIP finds alike: {_names(nodes)}", record=node.key,
                              file=node.image)


def _label_spread(nodes: list[Node], ctx: Context) -> list[str]:
    """What a group of look-alikes disagrees on: cultures, categories, train and test."""
    spread = []
    cultures = sorted({n.culture or "?" for n in nodes})
    if len(cultures) > 1:
        spread.append(f"cultures {', '.join(cultures)}")
    categories = sorted({n.category for n in nodes if n.category})
    if len(categories) > 1:
        spread.append(f"categories {', '.join(categories)}")
    if not ctx.splits_assigned_later and {"train", "test"} <= {n.split for n in nodes}:
        spread.append("train and test splits")
    return spread


def _pixel_conflicts(nodes: list[Node], ctx: Context) -> Iterable[Finding]:
    """Leakage within a group of copies of one photo."""
    mine = [n for n in nodes if n.record is not None]
    cultures = sorted({n.culture or "?" for n in nodes})
    names = _names(nodes)
    if len(cultures) > 1:
        for node in mine:
            yield Finding("duplicate.label_conflict", f"cultures {', '.join(cultures)} in "
                          f"one duplicate group: {names}", record=node.key, file=node.image,
                          field="culture")
        return
    categories = sorted({n.category for n in nodes if n.category})
    if len(categories) > 1:
        for node in mine:
            yield Finding("duplicate.category_conflict", f"categories "
                          f"{', '.join(categories)} in one duplicate group: {names}",
                          record=node.key, file=node.image, field="category")
    if not ctx.splits_assigned_later and {"train", "test"} <= {n.split for n in nodes}:
        for node in mine:
            if node.split == "test":
                yield Finding("duplicate.split_leak", f"test image in a duplicate group "
                              f"with training images: {names}", record=node.key,
                              file=node.image, field="split")
