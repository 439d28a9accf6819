"""Generate the synthetic e-commerce click log in ``sample_data/``.

Seeded and vectorised (numpy; one loop over *positions in a session*, never over
rows or sessions), so the default 20k-session set takes well under a second and a
1M-session / ~5M-row set for benchmarks a few seconds.

Generative process (see README.md in this folder):

* 2,000 items in 20 categories; readable unique names ``<adjective> <material>
  <product type>`` from per-category word lists; log-normal prices by category.
* Zipf item popularity (exponent ``ZIPF_A``) over a random ranking of the items.
* Every item has ``N_NEXT`` preferred "next" items (similar items in its own
  category plus one complement from a related category), chosen at random, not
  by popularity, so they carry signal that popularity does not.
* A session starts in an "intent" category (a returning user's favourite
  category half the time, otherwise by popularity) and then, click after click:
  goes back to the item two clicks ago (``P_BACK``), follows one of the current
  item's preferred next items (``P_FOLLOW``), switches category (``P_SWITCH``;
  half of the switches to a related category), or else stays in the current
  category and picks an item by popularity.
* Session lengths: a mixture of two geometric laws, 1..49 clicks (one-click
  sessions included on purpose: loaders are expected to filter them).
* Timestamps: unix seconds over 30 days from 2024-03-01 UTC, session starts
  with a daily rhythm, clicks a log-normal ~45 s apart (capped at 30 min).
* About 2% of clicks are followed by a back-to-back duplicate click 1-5 s later.
* About 35% of sessions belong to a logged-in user from a pool with Zipf-like
  return frequency; the rest have an empty ``user_id``.
* ``event_type``: ``view``; ``cart`` on ~7% of clicks; sessions with a cart and
  at least two clicks end with an extra ``purchase`` row of the last carted item
  with probability 0.45.

CLI::

    python sample_data/make_shop.py [--sessions N] [--seed S] [--out DIR]

writes ``shop_sessions.csv`` (``.csv.gz`` if it would exceed 5 MB) and
``shop_items.csv``. Importable: ``generate_shop(n_sessions, seed)`` returns
``(events_df, items_df)``.
"""
from __future__ import annotations

import argparse
import os
import sys

import numpy as np
import pandas as pd

DEFAULT_SESSIONS = 20_000
DEFAULT_SEED = 2016

N_ITEMS = 2_000
ZIPF_A = 0.9
N_NEXT = 4
NEXT_WEIGHTS = np.array([0.4, 0.25, 0.2, 0.15])
P_BACK = 0.05
P_FOLLOW = 0.45
P_SWITCH = 0.12
P_DUP = 0.02
P_CART = 0.07
P_PURCHASE = 0.45
P_USER = 0.35
MAX_LEN = 49
START_TS = 1_709_251_200  # 2024-03-01 00:00:00 UTC
N_DAYS = 30

_COLOURS = ["Blue", "Black", "White", "Grey", "Red", "Green", "Navy", "Olive", "Sand", "Rust"]

# name -> (median price, adjectives, materials, product types, related categories)
CATEGORIES: dict[str, tuple] = {
    "Scarves & Hats": (25, _COLOURS, ["Wool", "Cashmere", "Cotton", "Knit", "Fleece"],
                       ["Scarf", "Beanie", "Cap", "Beret", "Headband"], ["Jackets"]),
    "Jackets": (120, _COLOURS, ["Leather", "Denim", "Down", "Nylon", "Tweed"],
                ["Jacket", "Parka", "Blazer", "Raincoat", "Vest"], ["Scarves & Hats", "Shoes"]),
    "Shoes": (80, _COLOURS, ["Leather", "Suede", "Canvas", "Mesh", "Rubber"],
              ["Sneakers", "Boots", "Loafers", "Sandals", "Slippers"], ["Bags", "Jackets"]),
    "Bags": (60, _COLOURS, ["Leather", "Canvas", "Nylon", "Cork", "Vegan Leather"],
             ["Backpack", "Tote", "Wallet", "Duffel", "Crossbody Bag"], ["Shoes", "Watches"]),
    "Watches": (150, _COLOURS, ["Steel", "Titanium", "Leather", "Silicone", "Gold-Tone"],
                ["Watch", "Smartwatch", "Watch Strap", "Pocket Watch", "Chronograph"], ["Bags"]),
    "Cookware": (45, _COLOURS, ["Cast Iron", "Stainless", "Copper", "Enamel", "Nonstick"],
                 ["Frying Pan", "Saucepan", "Wok", "Dutch Oven", "Kettle"], ["Tableware", "Coffee & Tea"]),
    "Tableware": (18, _COLOURS, ["Ceramic", "Porcelain", "Stoneware", "Glass", "Bamboo"],
                  ["Mug", "Plate", "Bowl", "Teapot", "Serving Tray"], ["Cookware", "Coffee & Tea"]),
    "Bedding": (55, _COLOURS, ["Linen", "Cotton", "Flannel", "Silk", "Bamboo"],
                ["Duvet Cover", "Pillowcase", "Sheet Set", "Throw Blanket", "Quilt"], ["Lighting"]),
    "Lighting": (70, _COLOURS, ["Brass", "Rattan", "Glass", "Concrete", "Oak"],
                 ["Desk Lamp", "Floor Lamp", "Pendant Light", "Lantern", "String Lights"],
                 ["Furniture", "Bedding"]),
    "Furniture": (180, _COLOURS, ["Oak", "Walnut", "Pine", "Metal", "Rattan"],
                  ["Side Table", "Bookshelf", "Stool", "Armchair", "Bench"], ["Lighting"]),
    "Audio": (90, _COLOURS, ["Wireless", "Noise-Cancelling", "Compact", "Studio", "Portable"],
              ["Headphones", "Earbuds", "Headset", "Speaker", "Soundbar"],
              ["Phone Accessories", "Computer Accessories"]),
    "Phone Accessories": (20, _COLOURS, ["Silicone", "Leather", "Braided", "Magnetic", "Rugged"],
                          ["Phone Case", "Charger", "Cable", "Power Bank", "Screen Protector"], ["Audio"]),
    "Computer Accessories": (45, _COLOURS, ["Mechanical", "Ergonomic", "Aluminium", "Wireless", "Compact"],
                             ["Keyboard", "Mouse", "Laptop Sleeve", "Monitor Stand", "USB Hub"],
                             ["Audio", "Stationery"]),
    "Fitness": (25, _COLOURS, ["Cork", "Rubber", "Steel", "Neoprene", "Foam"],
                ["Yoga Mat", "Dumbbell", "Water Bottle", "Resistance Band", "Jump Rope"], ["Outdoor"]),
    "Outdoor": (70, _COLOURS, ["Ultralight", "Waterproof", "Insulated", "Folding", "Carbon"],
                ["Tent", "Sleeping Bag", "Camping Chair", "Headlamp", "Trekking Pole"], ["Fitness", "Garden"]),
    "Garden": (20, _COLOURS, ["Terracotta", "Galvanised", "Steel", "Recycled", "Ceramic"],
               ["Planter", "Watering Can", "Pruner", "Garden Hose", "Seed Tray"], ["Outdoor"]),
    "Beauty": (18, ["Hydrating", "Soothing", "Gentle", "Rich", "Light", "Daily", "Night",
                    "Travel-Size", "Unscented", "Fresh"],
               ["Aloe", "Argan", "Shea", "Rosehip", "Vitamin C"],
               ["Face Cream", "Serum", "Lip Balm", "Shampoo", "Body Lotion"], ["Bags"]),
    "Toys": (25, _COLOURS, ["Wooden", "Plush", "Magnetic", "Classic", "Glow"],
             ["Puzzle", "Building Set", "Plush Toy", "Board Game", "Kite"], ["Stationery"]),
    "Stationery": (14, _COLOURS, ["Leather", "Kraft", "Linen", "Recycled", "Dotted"],
                   ["Notebook", "Planner", "Fountain Pen", "Sketchbook", "Pencil Case"],
                   ["Toys", "Computer Accessories"]),
    "Coffee & Tea": (16, ["Classic", "Smooth", "Bold", "Bright", "Everyday", "Reserve", "Morning",
                          "Evening", "Artisan", "House"],
                     ["Organic", "Single-Origin", "Dark Roast", "Jasmine", "Decaf"],
                     ["Coffee Beans", "Loose Tea", "French Press", "Grinder", "Pour-Over Set"],
                     ["Tableware", "Cookware"]),
}

# relative hour-of-day weights for session starts (UTC as shop time)
_HOURLY = np.array([2, 1, 1, 1, 1, 2, 3, 5, 6, 6, 6, 7, 8, 7, 6, 6, 7, 8, 9, 11, 12, 11, 8, 4],
                   dtype=float)


def _make_items(rng: np.random.Generator) -> pd.DataFrame:
    """Items table in internal order (contiguous by category); ids assigned later."""
    names_cat = list(CATEGORIES)
    n_cat = len(names_cat)
    # uneven category sizes summing to N_ITEMS, each between 40 and 200
    sizes = np.clip(rng.dirichlet(np.full(n_cat, 4.0)) * N_ITEMS, 40, 200).astype(int)
    while sizes.sum() != N_ITEMS:
        diff = N_ITEMS - sizes.sum()
        j = rng.integers(n_cat)
        sizes[j] = np.clip(sizes[j] + np.sign(diff), 40, 200)
    names, cats, prices = [], [], []
    for c, (median, adjs, mats, types, _) in enumerate(CATEGORIES.values()):
        n_combo = len(adjs) * len(mats) * len(types)
        pick = rng.choice(n_combo, size=sizes[c], replace=False)
        a, rest = np.divmod(pick, len(mats) * len(types))
        m, t = np.divmod(rest, len(types))
        names += [f"{adjs[i]} {mats[j]} {types[k]}" for i, j, k in zip(a, m, t)]
        cats += [c] * sizes[c]
        # log-normal price around the category median, a product-type factor, ending in .99
        type_factor = np.exp(rng.normal(0, 0.3, len(types)))[t]
        p = median * type_factor * np.exp(rng.normal(0, 0.35, sizes[c]))
        prices.append(np.maximum(np.floor(p), 1) + 0.99)
    return pd.DataFrame({"name": names, "cat": np.array(cats), "price": np.round(np.concatenate(prices), 2)})


def generate_shop(n_sessions: int = DEFAULT_SESSIONS, seed: int = DEFAULT_SEED
                  ) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Return ``(events_df, items_df)``.

    events_df: session_id (int64, 1.. in order of session start), user_id (Int64, <NA>
    for anonymous sessions), item_id (str ``SKU-#####``), timestamp (int64 unix s),
    category (str), price (float64), event_type (``view``/``cart``/``purchase``);
    sorted by session_id then timestamp.
    items_df: item_id, name, category, price (one row per item, sorted by item_id).
    """
    if n_sessions < 1:
        raise ValueError("n_sessions must be >= 1")
    rng = np.random.default_rng(seed)
    cat_names = list(CATEGORIES)
    n_cat = len(cat_names)
    cat_index = {c: i for i, c in enumerate(cat_names)}
    related = [np.array([cat_index[r] for r in CATEGORIES[c][4]]) for c in cat_names]

    # ---- items -------------------------------------------------------------
    items = _make_items(rng)
    item_cat = items["cat"].to_numpy()
    cat_start = np.searchsorted(item_cat, np.arange(n_cat))
    cat_size = np.bincount(item_cat, minlength=n_cat)
    pop = 1.0 / (rng.permutation(N_ITEMS) + 1.0) ** ZIPF_A
    cat_pop = np.bincount(item_cat, weights=pop, minlength=n_cat)
    cat_pop_cdf = np.cumsum(cat_pop / cat_pop.sum())
    cat_pop_cdf[-1] = 1.0
    # key[j] = cat_j + cumulative share of item j within its category, in (cat, cat+1]
    within = pop / cat_pop[item_cat]
    cum = np.cumsum(within)
    cum -= np.concatenate([[0.0], cum[cat_start[1:] - 1]])[item_cat]
    cum[np.r_[cat_start[1:] - 1, N_ITEMS - 1]] = 1.0
    key = item_cat + cum

    def draw_in_cat(c: np.ndarray) -> np.ndarray:
        return np.minimum(np.searchsorted(key, c + rng.random(c.size), side="right"), N_ITEMS - 1)

    def draw_cat(k: int) -> np.ndarray:
        return np.minimum(np.searchsorted(cat_pop_cdf, rng.random(k), side="right"), n_cat - 1)

    # preferred next items: N_NEXT-1 similar items in the same category (uniform, no
    # self-loop) and one complement in a related category (uniform)
    nxt = np.empty((N_ITEMS, N_NEXT), dtype=np.int64)
    ic = item_cat
    for k in range(N_NEXT - 1):
        off = 1 + rng.integers(0, cat_size[ic] - 1)
        nxt[:, k] = cat_start[ic] + (np.arange(N_ITEMS) - cat_start[ic] + off) % cat_size[ic]
    rel_any = np.array([[r[0], r[-1]] for r in related])  # one or two related categories
    rel_choice = rel_any[ic, rng.integers(0, 2, N_ITEMS)]
    nxt[:, N_NEXT - 1] = cat_start[rel_choice] + rng.integers(0, cat_size[rel_choice])

    # ---- sessions: starts, users, lengths ------------------------------------
    long_ = rng.random(n_sessions) < 0.2
    length = np.where(long_, rng.geometric(0.09, n_sessions), rng.geometric(0.3, n_sessions))
    length = np.minimum(length, MAX_LEN)
    day = rng.integers(0, N_DAYS, n_sessions)
    hour = rng.choice(24, n_sessions, p=_HOURLY / _HOURLY.sum())
    start = START_TS + day * 86_400 + hour * 3_600 + rng.integers(0, 3_600, n_sessions)
    start.sort()  # session ids follow start order
    n_users = max(1, n_sessions // 6)
    user_w = 1.0 / np.arange(1, n_users + 1) ** 0.7
    user = rng.choice(n_users, n_sessions, p=user_w / user_w.sum())
    user = rng.permutation(n_users)[user] + 1  # ids not ordered by activity
    logged_in = rng.random(n_sessions) < P_USER
    fav_cat = draw_cat(n_users + 1)

    # ---- click sequences: loop over positions, vectorised over sessions -----
    order = np.argsort(-length, kind="stable")  # active sessions at step t = prefix
    len_sorted = length[order]
    offsets = np.concatenate([[0], np.cumsum(length)])[:-1]
    off_sorted = offsets[order]
    n_active = np.searchsorted(-len_sorted, -np.arange(1, MAX_LEN + 1), side="right")
    out = np.empty(int(length.sum()), dtype=np.int64)

    intent = draw_cat(n_sessions)
    use_fav = logged_in[order] & (rng.random(n_sessions) < 0.5)
    intent = np.where(use_fav, fav_cat[user[order]], intent)
    cur = draw_in_cat(intent)
    prev = cur.copy()
    out[off_sorted] = cur
    for t in range(1, MAX_LEN):
        n = n_active[t]
        if n == 0:
            break
        cur, prev = cur[:n], prev[:n]
        u = rng.random(n)
        new = np.empty(n, dtype=np.int64)
        back = (u < P_BACK) & (t >= 2)
        follow = (~back) & (u < P_BACK + P_FOLLOW)
        switch = (~back) & (~follow) & (u < P_BACK + P_FOLLOW + P_SWITCH)
        stay = ~(back | follow | switch)
        new[back] = prev[back]
        which = np.searchsorted(np.cumsum(NEXT_WEIGHTS), rng.random(follow.sum()) * NEXT_WEIGHTS.sum(),
                                side="right")
        new[follow] = nxt[cur[follow], np.minimum(which, N_NEXT - 1)]
        ns = switch.sum()
        new_cat = np.where(rng.random(ns) < 0.5,
                           rel_any[item_cat[cur[switch]], rng.integers(0, 2, ns)], draw_cat(ns))
        new[switch] = draw_in_cat(new_cat)
        new[stay] = draw_in_cat(item_cat[cur[stay]])
        again = (switch | stay) & (new == cur)  # one re-draw to limit accidental repeats
        new[again] = draw_in_cat(item_cat[new[again]])
        out[off_sorted[:n] + t] = new
        prev, cur = cur, new

    sess = np.repeat(np.arange(n_sessions), length)
    pos = np.arange(out.size) - offsets[sess]

    # ---- cart / purchase, duplicates, timestamps ------------------------------
    is_cart = rng.random(out.size) < P_CART
    last_cart_pos = np.full(n_sessions, -1)
    np.maximum.at(last_cart_pos, sess[is_cart], pos[is_cart])
    buy = (last_cart_pos >= 0) & (length >= 2) & (rng.random(n_sessions) < P_PURCHASE)
    buy_sess = np.nonzero(buy)[0]
    buy_item = out[offsets[buy_sess] + last_cart_pos[buy_sess]]

    dup = rng.random(out.size) < P_DUP
    rep = 1 + dup
    r_sess = np.repeat(sess, rep)
    r_item = np.repeat(out, rep)
    r_type = np.repeat(is_cart.astype(np.int8), rep)  # 0 view, 1 cart, 2 purchase
    first_of_dup = np.zeros(r_item.size, dtype=bool)
    first_of_dup[np.cumsum(rep)[dup] - 1] = True  # the duplicate copy
    r_type[first_of_dup] = 0  # the repeated click is a plain view

    gap = np.minimum(np.exp(rng.normal(np.log(45), 1.0, r_item.size)), 1_800).astype(np.int64) + 2
    gap[first_of_dup] = rng.integers(1, 6, first_of_dup.sum())
    new_sess = np.r_[True, r_sess[1:] != r_sess[:-1]]
    gap[new_sess] = 0
    cg = np.cumsum(gap)
    ts = start[r_sess] + cg - cg[np.flatnonzero(new_sess)][np.cumsum(new_sess) - 1]

    last_ts = np.empty(n_sessions, dtype=np.int64)
    last_ts[r_sess] = ts  # last write per session wins (rows are in order)
    b_ts = last_ts[buy_sess] + rng.integers(20, 300, buy_sess.size)

    all_sess = np.concatenate([r_sess, buy_sess])
    all_item = np.concatenate([r_item, buy_item])
    all_type = np.concatenate([r_type, np.full(buy_sess.size, 2, dtype=np.int8)])
    all_ts = np.concatenate([ts, b_ts])
    o = np.lexsort((all_ts, all_sess))
    all_sess, all_item, all_type, all_ts = all_sess[o], all_item[o], all_type[o], all_ts[o]

    # ---- external ids and frames ---------------------------------------------
    ext = rng.permutation(N_ITEMS)  # internal index -> external number (0-based)
    sku = np.array([f"SKU-{i + 1:05d}" for i in range(N_ITEMS)], dtype=object)
    uid = pd.arrays.IntegerArray(user[all_sess], ~logged_in[all_sess])
    cat_arr = pd.Categorical.from_codes(item_cat[all_item], categories=cat_names)
    events = pd.DataFrame({
        "session_id": all_sess + 1,
        "user_id": uid,
        "item_id": pd.Categorical.from_codes(ext[all_item], categories=sku).astype("str"),
        "timestamp": all_ts,
        "category": pd.Series(cat_arr).astype("str"),
        "price": items["price"].to_numpy()[all_item],
        "event_type": pd.Categorical.from_codes(all_type, categories=["view", "cart", "purchase"]
                                                ).astype("str"),
    })
    items_df = pd.DataFrame({
        "item_id": sku[ext],
        "name": items["name"].to_numpy(),
        "category": np.array(cat_names, dtype=object)[item_cat],
        "price": items["price"].to_numpy(),
    }).sort_values("item_id", ignore_index=True)
    items_df["item_id"] = items_df["item_id"].astype("str")
    items_df["category"] = items_df["category"].astype("str")
    return events, items_df


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--sessions", type=int, default=DEFAULT_SESSIONS)
    ap.add_argument("--seed", type=int, default=DEFAULT_SEED)
    ap.add_argument("--out", default=os.path.dirname(os.path.abspath(__file__)))
    ap.add_argument("--gzip", action="store_true", help="always write shop_sessions.csv.gz")
    args = ap.parse_args(argv)
    events, items = generate_shop(args.sessions, args.seed)
    os.makedirs(args.out, exist_ok=True)
    path = os.path.join(args.out, "shop_sessions.csv")
    events.to_csv(path, index=False)
    if args.gzip or os.path.getsize(path) > 5 * 2**20:  # keep plain CSV up to 5 MiB
        os.remove(path)
        path += ".gz"
        events.to_csv(path, index=False, compression={"method": "gzip", "mtime": 0})
    items.to_csv(os.path.join(args.out, "shop_items.csv"), index=False)
    print(f"{path}: {events['session_id'].nunique():,} sessions, {len(events):,} rows, "
          f"{events['item_id'].nunique():,} items; shop_items.csv: {len(items):,} items")
    return 0


if __name__ == "__main__":
    sys.exit(main())
