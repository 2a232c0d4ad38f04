"""A person becomes a character through the bot, then tells a recorded story: the whole flow, measured.

    python benchmarks/family_bot.py                           # the four clips of at least 8 s
    python benchmarks/family_bot.py --clips liveportrait_d11 --story-s 0   # one clip, no story

Everything is real except Telegram: the bot (:class:`bot.app.GramophoneBot`) talks HTTP to the
fake Bot API of ``tests/fake_telegram``, and real ``python -m bot.worker`` processes (a renderer
and a CPU maker) take the work from a real huey queue, as in the end-to-end tests.

For each clip in ``../shared/clips/`` (skipped when absent), its first 65 % is recorded the way a
person would record it in Telegram, and the rest is kept unheard:

* ``latentsync_demo3`` (the phone video) is sent as **one ordinary video** of the whole passage,
  uncropped, as the phone filmed it;
* the square clips are cut into **round video notes** (480 px, square on the face), one per part
  of the passage;
* the silent take is the training part's first seconds with the sound removed (no clip has a
  silent stretch; its mouth moves, which only makes the idle livelier).

The clips are far shorter than the reading passage, so the benchmark tells the bot to expect
them: the passage is regrouped into as many parts as there are takes, and the reading speed is
set so that each part's expected length is its take's. Every take still goes through the bot's
checks on arrival. Figures per clip:

* ``last take -> preview``: from sending the last (silent) take to the preview video note, with
  the admin's taps (consent, voice, make) answered at once; and ``make -> preview``, the
  machine's part alone;
* the leave-one-out lip sync of the library the bot made (``benchmarks/real_mouths.py``'s
  measure): the unheard rest rendered on it, its mouth against the real one, beside the loop
  baseline.

Then a **recorded story** (``--story-s``, default 190 s: the clips' own voices one after another,
looped) is added with ``/newstory`` for the first character and asked for by a child: the time to
the first part, whether every part came in order, and the render worker's memory (resident set of
the worker and its render processes, sampled every 0.2 s) over the first and the last third of
the story: flat means the last third's peak is within 10 % of the first's.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))
os.environ.setdefault("PTB_TIMEDELTA", "1")

import real_mouths  # noqa: E402
from family import NOTE_SIDE, cut  # noqa: E402

from bot.texts import t  # noqa: E402
from engine import features as feat  # noqa: E402
from engine.framing import face_crop  # noqa: E402
from engine.media import ANALYSIS_SAMPLE_RATE, ffmpeg_exe, probe, read_audio, write_wav  # noqa: E402
from engine.render import RenderConfig  # noqa: E402
from tests.bot_harness import Stack, Worker, running_bot, shared_assets, until  # noqa: E402
from tests.fake_telegram import FakeBotApi  # noqa: E402
from tests.test_bot_admin import reply, say  # noqa: E402

CLIPS = ROOT.parent / "shared" / "clips"
DEFAULT_CLIPS = (
    "latentsync_demo3",
    "liveportrait_d11",
    "sadtalker_WDA_AOC_000",
    "sadtalker_WDA_KatieHill_000",
)
AS_ONE_VIDEO = {"latentsync_demo3"}
ADMIN, CHILD = 700, 701
IDLE_S = 6.5
H264 = ("-c:v", "libx264", "-preset", "veryfast")
AAC = ("-c:a", "aac", "-b:a")  # then the bit rate


def ffmpeg(*args: str) -> None:
    subprocess.run([ffmpeg_exe(), "-nostdin", "-loglevel", "error", "-y", *args], check=True)


def cut_video(clip: Path, length: float, out: Path) -> Path:
    """The clip's first ``length`` seconds as the phone filmed it (no crop)."""
    ffmpeg("-i", str(clip), "-t", f"{length:.3f}", *H264, "-crf", "20", *AAC, "128k", str(out))
    return out


def silent_take(clip: Path, train_s: float, work: Path) -> Path:
    """The training part's first seconds (looped when it is shorter: never the unheard rest), its
    sound replaced by silence, as a round video note."""
    crop = face_crop(clip)
    train = work / f"{clip.stem}-train-only.mp4"
    ffmpeg("-i", str(clip), "-t", f"{train_s:.3f}", "-an", *H264, "-crf", "18", str(train))
    out = work / f"{clip.stem}-idle.mp4"
    square = f"crop={crop.side}:{crop.side}:{crop.x}:{crop.y},scale={NOTE_SIDE}:{NOTE_SIDE}"
    silence = ("-f", "lavfi", "-i", "anullsrc=r=48000:cl=mono")
    looped = ("-stream_loop", "-1", "-i", str(train))
    ffmpeg(*looped, *silence, "-t", f"{IDLE_S:.3f}", "-map", "0:v", "-map", "1:a", "-vf", square,
           *H264, "-crf", "20", *AAC, "64k", str(out))  # fmt: skip
    return out


def regrouped(parts: list[str], count: int) -> list[str]:
    """The passage's parts joined into ``count`` groups of about equal length."""
    total = sum(len(part) for part in parts)
    groups: list[list[str]] = [[] for _ in range(count)]
    done = 0
    for part in parts:
        groups[min(count - 1, int(done / total * count))].append(part)
        done += len(part)
    return [" ".join(group) for group in groups if group]


class MemorySampler:
    """The resident memory of a process and its children, sampled every 0.2 s in a thread."""

    def __init__(self, pid: int) -> None:
        self.pid = pid
        self.samples: list[tuple[float, int]] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def __enter__(self) -> MemorySampler:
        self._thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._stop.set()
        self._thread.join()

    def _tree(self) -> list[int]:
        pids, frontier = [self.pid], [self.pid]
        while frontier:
            pid = frontier.pop()
            with contextlib.suppress(OSError):
                for task in Path(f"/proc/{pid}/task").iterdir():
                    children = (task / "children").read_text().split()
                    pids += [int(c) for c in children]
                    frontier += [int(c) for c in children]
        return pids

    def _run(self) -> None:
        while not self._stop.wait(0.2):
            total = 0
            for pid in self._tree():
                with contextlib.suppress(OSError):
                    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
                        if line.startswith("VmRSS:"):
                            total += int(line.split()[1]) * 1024
            self.samples.append((time.monotonic(), total))


def button(message: object, prefix: str) -> str:
    return next(data for _, data in message.buttons if data and data.startswith(prefix))  # type: ignore[attr-defined]


async def make_person(stack: Stack, clip: Path, work: Path) -> dict[str, float | str]:
    """The "from a person" conversation for one clip; the times, and the new character's id."""
    from bot.handlers import newcharacter

    api = stack.api
    duration = probe(clip).duration or 0.0
    train_s = round(duration * real_mouths.TRAIN_SHARE * feat.FPS) / feat.FPS
    one_video = clip.stem in AS_ONE_VIDEO
    count = 2 if one_video else (2 if train_s >= 8 else 1)
    original_parts = newcharacter.passage_parts
    parts = regrouped(original_parts("en"), count)
    newcharacter.passage_parts = lambda language: list(parts)  # type: ignore[assignment]
    newcharacter.READING_CHARS_PER_S = sum(len(part) for part in parts) / train_s
    try:
        name = f"Person {clip.stem.split('_')[-1].replace('-', ' ')}"
        await say(api, ADMIN, "/newcharacter")
        named = await say(api, ADMIN, name)
        mark = api.mark()
        api.press_button(ADMIN, named.message_id, "nc:src:person")  # type: ignore[attr-defined]
        await api.wait_for(api.sends_to(ADMIN, "sendMessage"), count=2, since=mark, timeout=30)
        if one_video:
            video = cut_video(clip, train_s, work / f"{clip.stem}-whole.mp4")
            info = probe(video)
            mark = api.mark()
            api.send_video(
                ADMIN, video.read_bytes(), duration=round(train_s), width=info.width, height=info.height
            )
            answer = await reply(api, ADMIN, mark, timeout=120)
            assert answer.text == t("nc_ask_idle", "en"), answer.text  # type: ignore[attr-defined]
        else:
            start = 0.0
            for index, part in enumerate(parts):
                length = train_s * len(part) / sum(len(p) for p in parts)
                note = cut(clip, start, length, work / f"{clip.stem}-take{index}.mp4")
                start += length
                mark = api.mark()
                api.send_video_note(ADMIN, note.read_bytes(), duration=round(length), length=NOTE_SIDE)
                await api.wait_for(api.sends_to(ADMIN, "sendMessage"), since=mark, timeout=120)
                said = [m for m in api.sent_messages(ADMIN) if m.method == "sendMessage"][-1].text
                assert not said.startswith("Could you record"), f"take {index + 1} refused: {said}"
        idle = silent_take(clip, train_s, work)
        mark, last_take = api.mark(), time.monotonic()
        api.send_video_note(ADMIN, idle.read_bytes(), duration=round(IDLE_S), length=NOTE_SIDE)
        consent = await reply(api, ADMIN, mark, timeout=120)
        assert "nc:consent" in [data for _, data in consent.buttons], consent.text  # type: ignore[attr-defined]
        mark = api.mark()
        api.press_button(ADMIN, consent.message_id, "nc:consent")  # type: ignore[attr-defined]
        voice = await reply(api, ADMIN, mark, timeout=120)
        mark = api.mark()
        api.press_button(ADMIN, voice.message_id, button(voice, "nc:voice:"))  # type: ignore[attr-defined]
        await api.wait_for("editMessageText", since=mark, timeout=30)
        mark, pressed = api.mark(), time.monotonic()
        api.press_button(ADMIN, voice.message_id, "nc:make")  # type: ignore[attr-defined]
        await api.wait_for(api.sends_to(ADMIN, "sendVideoNote"), since=mark, timeout=900)
        arrived = time.monotonic()
    finally:
        newcharacter.passage_parts = original_parts  # type: ignore[assignment]
    made = sorted((stack.data_dir / "characters").glob("*/made-by.json"), key=lambda p: p.stat().st_mtime)[
        -1
    ].parent
    return {
        "id": made.name,
        "train_s": train_s,
        "takes": 1 if one_video else count,
        "last_take_to_preview": arrived - last_take,
        "make_to_preview": arrived - pressed,
    }


def story_audio(clips: list[Path], seconds: float, path: Path) -> Path:
    """The clips' own voices, one after another with a short pause, looped to ``seconds``."""
    pieces = []
    pause = np.zeros(int(0.6 * ANALYSIS_SAMPLE_RATE), np.float32)
    while sum(len(p) for p in pieces) < seconds * ANALYSIS_SAMPLE_RATE:
        for clip in clips:
            pieces += [read_audio(clip), pause]
    audio = np.concatenate(pieces)[: int(seconds * ANALYSIS_SAMPLE_RATE)]
    return write_wav(path, audio, ANALYSIS_SAMPLE_RATE)


async def tell_story(
    stack: Stack, character: str, audio: Path, seconds: float, render_worker: Worker
) -> dict[str, float]:
    api = stack.api
    asked = await say(api, ADMIN, "/newstory")
    mark = api.mark()
    api.press_button(ADMIN, asked.message_id, f"ns:char:{character}")  # type: ignore[attr-defined]
    await api.wait_for("editMessageText", since=mark, timeout=30)
    mark = api.mark()
    api.send_audio(
        ADMIN, audio.read_bytes(), duration=round(seconds), file_name="story.wav", mime_type="audio/wav"
    )
    await reply(api, ADMIN, mark, timeout=120)
    await say(api, ADMIN, "Grandma Reads")
    api.send_text(CHILD, f"/start {character}")
    await api.wait_for(api.sends_to(CHILD, "sendMessage"), timeout=60)
    mark = api.mark()
    api.send_text(CHILD, "/story")
    menu = await reply(api, CHILD, mark, timeout=120)
    assert render_worker.process is not None
    with MemorySampler(render_worker.process.pid) as memory:
        mark, pressed = api.mark(), time.monotonic()
        api.press_button(CHILD, menu.message_id, button(menu, "rs:"))  # type: ignore[attr-defined]
        first = await api.wait_for(
            lambda call: api.sends_to(CHILD)(call) and call.method in ("sendVideo", "sendVideoNote"),
            since=mark,
            timeout=120,
        )
        first_s = first[0].time - pressed if hasattr(first[0], "time") else time.monotonic() - pressed

        def all_sent() -> bool:
            rows = stack.requests(CHILD)
            story = [r for r in rows if str(r["input"]).startswith("rec/")]
            return (
                bool(story)
                and len(story) == story[0]["parts"]
                and all(r["status"] in ("sent", "failed") for r in story)
            )

        await until(all_sent, timeout=1800, what="every part of the story")
        ended = time.monotonic()
    rows = [r for r in stack.requests(CHILD) if str(r["input"]).startswith("rec/")]
    replies = [r["reply_message_id"] for r in rows]
    in_order = (
        all(r["status"] == "sent" for r in rows)
        and [r["part"] for r in rows] == list(range(len(rows)))
        and replies == sorted(replies)
    )
    span = ended - pressed
    thirds = [
        [m for t, m in memory.samples if pressed + k * span / 3 <= t < pressed + (k + 1) * span / 3] or [0]
        for k in range(3)
    ]
    return {
        "parts": len(rows),
        "first_s": first_s,
        "first_part_s": float(rows[0]["duration_s"]),
        "total_s": span,
        "in_order": float(in_order),
        "told_s": sum(r["duration_s"] for r in rows),
        "mem_first": max(thirds[0]) / 1e6,
        "mem_last": max(thirds[2]) / 1e6,
    }


async def main_async(clips: list[Path], work: Path, story_s: float) -> int:
    characters, stories = shared_assets()
    with FakeBotApi() as api:
        stack = Stack(
            api, work / "data", characters, stories, defaults=dict(admins=[ADMIN], heartbeat_timeout_s=30)
        )
        api.add_user(ADMIN, "Admin")
        renderer = Worker(stack.settings(), workers=1).start()
        maker = Worker(stack.settings(), workers=1, route="cpu").start()
        try:
            made = []
            async with running_bot(stack.settings()):
                for clip in clips:
                    result = await make_person(stack, clip, work)
                    made.append((clip, result))
                    sent = "one video" if clip.stem in AS_ONE_VIDEO else f"{result['takes']} video notes"
                    print(
                        f"{clip.stem}: {sent} "
                        f"of {result['train_s']:.1f} s; last take -> preview "
                        f"{result['last_take_to_preview']:.1f} s, "
                        f"make -> preview {result['make_to_preview']:.1f} s",
                        flush=True,
                    )
                story = None
                if story_s > 0 and made:
                    audio = story_audio(clips, story_s, work / "story.wav")
                    story = await tell_story(stack, str(made[0][1]["id"]), audio, story_s, renderer)
        finally:
            renderer.stop()
            maker.stop()
    rows = []
    for clip, result in made:
        library = stack.data_dir / "characters" / str(result["id"]) / "library.gchar"
        train_s = float(result["train_s"])
        test = read_audio(clip)[int(train_s * ANALYSIS_SAMPLE_RATE) :]
        row = real_mouths.measure_library(
            clip,
            library,
            train_s,
            test,
            work,
            256,
            RenderConfig(),
            None,
            crop=face_crop(clip),
            build_s=float(result["make_to_preview"]),
        )
        rows.append(row)
    print("\nleave-one-out on the libraries the bot made ('build s' is make -> preview):")
    real_mouths.report(rows)
    if story is not None:
        flat = "flat" if story["mem_last"] <= 1.1 * story["mem_first"] else "growing"
        said = [
            f"recorded story of {story_s:.0f} s on {made[0][1]['id']}: {story['parts']:.0f} parts;",
            f"the first ({story['first_part_s']:.1f} s of story)",
            f"sent {story['first_s']:.1f} s after the press;",
            f"all in {story['total_s']:.0f} s, in order: {bool(story['in_order'])},",
            f"told {story['told_s']:.1f} s; render worker memory peak {story['mem_first']:.0f} MB",
            f"in the first third, {story['mem_last']:.0f} MB in the last ({flat})",
        ]
        print("\n" + " ".join(said))
    return 0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--clips", default=",".join(DEFAULT_CLIPS), help="comma-separated clip names")
    parser.add_argument("--story-s", type=float, default=190.0, help="length of the recorded story (0: none)")
    parser.add_argument("--work", help="keep the generated files here (default: a temporary folder)")
    args = parser.parse_args()
    clips = [CLIPS / f"{name}.mp4" for name in args.clips.split(",")]
    clips = [clip for clip in clips if clip.is_file()]
    if not clips:
        print(f"skipped: no clips at {CLIPS}")
        return 0
    if args.work:
        work = Path(args.work)
        work.mkdir(parents=True, exist_ok=True)
        return asyncio.run(main_async(clips, work, args.story_s))
    with tempfile.TemporaryDirectory(prefix="family-bot-") as folder:
        return asyncio.run(main_async(clips, Path(folder), args.story_s))


if __name__ == "__main__":
    sys.exit(main())
