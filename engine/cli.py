"""The ``gramophone`` command: a thin layer over the engine's API.

Exit status: 0 done; 1 the work failed (a video that cannot be decoded, a broken library, a full
disk); 2 a usage error (bad options or arguments, an unknown character, a malformed setting:
:class:`~engine.errors.InputError`); 130 interrupted (Ctrl-C). Errors are one line on stderr.

Other packages add subcommands through the ``gramophone.commands`` entry-point group (each entry
point is a function taking the argparse sub-parsers), so the engine never imports them: the bot
adds ``gramophone bot`` and ``gramophone worker`` that way.
"""

from __future__ import annotations

import argparse
import dataclasses
import logging
import math
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from importlib.metadata import PackageNotFoundError, entry_points, version
from pathlib import Path

from tqdm import tqdm

from .errors import GramophoneError, InputError

log = logging.getLogger("gramophone")


@contextmanager
def progress_bar(total: int | None, description: str, unit: str = "frame") -> Iterator[Callable[[int], None]]:
    """A tqdm bar on stderr; yields its ``update`` to pass as an engine ``progress`` callback."""
    with tqdm(total=total, desc=description, unit=unit, leave=False, dynamic_ncols=True, disable=None) as bar:
        yield bar.update


def _estimated_frames(path: str | Path) -> int | None:
    from .media import probe

    try:
        duration = probe(path).duration
    except GramophoneError:
        return None
    return int(duration * 25) if duration else None


def cmd_build(args: argparse.Namespace) -> int:
    from .build import BuildSettings, build_library
    from .media import Crop

    crop: Crop | str = args.crop.lower().replace("center", "centre") if args.crop else "face"
    if crop not in ("face", "centre"):
        crop = Crop.parse(args.crop)
    settings = BuildSettings(size=args.size, crop=crop, jpeg_quality=args.jpeg_quality)
    total = _estimated_frames(args.speech_video)
    if total is not None and args.idle:
        total += _estimated_frames(args.idle) or 0
    with progress_bar(total, "building") as update:
        info = build_library(args.speech_video, args.output, args.idle, settings, progress=update)
    print("\n".join(info.lines()))
    return 0


def cmd_info(args: argparse.Namespace) -> int:
    from .library import open_library

    with open_library(args.character) as library:
        print("\n".join(library.info().lines()))
    return 0


def cmd_render(args: argparse.Namespace) -> int:
    from .planner import PlannerSettings
    from .render import RenderConfig, render

    config = RenderConfig(planner=PlannerSettings(method=args.planner))
    with progress_bar(_estimated_frames(args.audio), "rendering") as update:
        result = render(
            args.character,
            args.audio,
            args.output,
            config=config,
            size=args.size,
            video_note=args.video_note,
            progress=update,
        )
    print(
        f"{result.path}: {result.duration_s:.1f} s, {result.frames} frames at {result.size}x{result.size}, "
        f"{result.joins} joins, rendered in {result.seconds:.1f} s "
        f"({result.duration_s / max(result.seconds, 1e-9):.1f}x real time)"
    )
    return 0


def _catalogue():
    from .characters import Catalogue

    catalogue = Catalogue()
    for problem in catalogue.problems:
        print(f"gramophone: warning: {problem}", file=sys.stderr)
    return catalogue


def _ensure_built(character) -> Path:
    """The character's library, with a progress bar when it has to be built first."""
    from .characters import ensure_library

    if character.is_built:
        return character.library_path
    print(f"building {character.name} (first time only)...", file=sys.stderr)
    with progress_bar(None, f"building {character.id}") as update:
        return ensure_library(character, progress=update)


def cmd_say(args: argparse.Namespace) -> int:
    from .say import say

    if args.file:
        try:
            text = Path(args.file).read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as error:
            raise InputError(
                f"cannot read {args.file}: {getattr(error, 'strerror', None) or error}"
            ) from None
    elif args.text is not None:
        text = args.text
    else:
        raise InputError("nothing to say: give TEXT or --file")
    character = _catalogue().get(args.character)
    voice = character.voice_for(args.lang)
    overrides = {
        key: value
        for key, value in (("voice", args.voice), ("rate", args.rate), ("pitch", args.pitch))
        if value is not None
    }
    if overrides:
        voice = dataclasses.replace(voice, **overrides)  # VoiceSettings checks the values
    _ensure_built(character)
    output = args.output or f"{character.id}-says.mp4"
    with progress_bar(None, "rendering") as update:
        result = say(
            character,
            text,
            output,
            language=args.lang,
            video_note=args.video_note,
            voice=voice,
            max_chars=args.max_chars,
            size=args.size,
            progress=update,
        )
    print(
        f"{result.path}: {character.name} says {result.duration_s:.1f} s of speech, rendered in "
        f"{result.seconds:.1f} s "
        f"({result.duration_s / max(result.seconds, 1e-9):.1f}x real time)"
    )
    return 0


def cmd_demo(args: argparse.Namespace) -> int:
    import time

    from .characters import builtin_characters_dir
    from .say import say

    started = time.perf_counter()
    character = _catalogue().get(args.character)
    _ensure_built(character)
    story = Path(args.story) if args.story else builtin_characters_dir() / "demo-story.en.txt"
    title, _, text = story.read_text(encoding="utf-8").partition("\n\n")
    with progress_bar(None, f"{character.name} tells {title.strip()!r}") as update:
        result = say(character, text, args.output, progress=update)
    print(
        f'{character.name} tells "{title.strip()}" ({result.duration_s:.0f} s): {Path(args.output).resolve()}'
    )
    print(f"done in {time.perf_counter() - started:.1f} s")
    return 0


def cmd_characters_list(args: argparse.Namespace) -> int:
    for character in _catalogue().list():
        state = "built" if character.is_built else "not built yet"
        print(
            f"{character.id:12} {character.name:20} {character.language}  {state:14} {character.description}"
        )
    return 0


def _chosen(args: argparse.Namespace) -> list:
    catalogue = _catalogue()
    return [catalogue.get(args.id)] if args.id else catalogue.list()


def cmd_characters_build(args: argparse.Namespace) -> int:
    from .characters import ensure_library

    for character in _chosen(args):
        with progress_bar(None, f"building {character.id}") as update:
            ensure_library(character, progress=update, rebuild=args.rebuild)
        print(f"{character.id}: {character.library_path}")
    return 0


def cmd_characters_info(args: argparse.Namespace) -> int:
    from .library import open_library

    for character in _chosen(args):
        print(
            f"{character.id}: {character.name} ({character.language}), pitch shift "
            f"{character.pitch_semitones:+.1f} semitones"
        )
        if character.is_built:
            with open_library(character.library_path) as library:
                print("\n".join("  " + line for line in library.info().lines()))
        else:
            print("  not built yet: gramophone characters build " + character.id)
    return 0


def _numbers(text: str | None, count: int, what: str, example: str) -> tuple[float, ...] | None:
    """``"120,340"`` -> (120.0, 340.0); a one-line error naming the option otherwise."""
    if text is None:
        return None
    try:
        values = tuple(float(part) for part in text.replace(";", ",").split(","))
    except ValueError:
        values = ()
    if len(values) != count or not all(math.isfinite(value) for value in values):
        raise InputError(f"{what} must be {count} numbers in picture pixels, like {example}")
    return values


def cmd_characters_make(args: argparse.Namespace) -> int:
    import os
    import shutil

    from .characters import Catalogue, builtin_characters_dir, made_characters_dir
    from .makers.make import make_character
    from .names import clean_name, unique_id
    from .speech import VoiceSettings

    name = clean_name(args.name)
    if name is None:
        raise InputError("--name must be 1 to 40 characters, not only spaces")
    mouth = _numbers(args.mouth, 2, "--mouth", "--mouth 250,410")
    eyes = _numbers(args.eyes, 4, "--eyes", "--eyes 190,260,310,262")
    open_mouth = _numbers(args.open_mouth, 4, "--open-mouth", "--open-mouth 250,400,250,430")
    if open_mouth and not mouth:
        raise InputError("--open-mouth needs --mouth too (where the mouth's centre is)")
    if args.mouth_width is not None and not (mouth and args.mouth_width > 0):
        raise InputError("--mouth-width needs --mouth too, and must be a positive number of pixels")
    into = Path(args.into) if args.into else made_characters_dir()
    into.mkdir(parents=True, exist_ok=True)
    taken = set(Catalogue(builtin_characters_dir(), into).characters) | {path.name for path in into.iterdir()}
    identifier = unique_id(name, taken)
    staging = into / f".tmp-{identifier}-cli-{os.getpid()}"  # the catalogue never looks in here
    folder = staging / identifier
    voice = (
        VoiceSettings(language=args.language, voice=args.voice)
        if args.voice
        else VoiceSettings(language=args.language)
    )
    try:
        with tqdm(
            total=1000, desc="starting", unit="‰", leave=False, dynamic_ncols=True, disable=None
        ) as bar:

            def progress(stage: str, fraction: float) -> None:
                bar.set_description(stage, refresh=False)
                bar.update(round(fraction * 1000) - bar.n)

            made = make_character(
                Path(args.picture),
                folder,
                character_id=identifier,
                name=name,
                language=args.language,
                voice=voice,
                mouth=(mouth[0], mouth[1]) if mouth else None,
                eyes=((eyes[0], eyes[1]), (eyes[2], eyes[3])) if eyes else None,
                mouth_width=args.mouth_width,
                open_mouth=((open_mouth[0], open_mouth[1]), (open_mouth[2], open_mouth[3]))
                if open_mouth
                else None,
                size=args.size,
                progress=progress,
            )
        folder.rename(into / identifier)  # one rename: readers see nothing, then the whole character
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    print(
        f"{identifier}: {name}, made on the CPU ({made.path}, {made.face}) in {made.seconds:.0f} s: "
        f"{into / identifier}"
    )
    print(f'try it: gramophone say --character {identifier} "Hello!" -o hello.mp4')
    return 0


def _version() -> str:
    try:
        return version("gramophone")
    except PackageNotFoundError:  # run from a checkout that was never installed
        return "unknown (not installed)"


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="gramophone",
        description="Talking-character videos on a CPU.",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog="examples:\n  gramophone demo                         # the fox tells a story: demo.mp4\n"
        '  gramophone say "Hello!" --character fox\n'
        "  gramophone characters make grandma.jpg --name Grandma\n\n"
        "exit status: 0 done, 1 the work failed, 2 a usage error, 130 interrupted. `gramophone COMMAND "
        "--help` for more.",
    )
    parser.add_argument(
        "-v", "--verbose", action="store_true", help="log what happens (the same as --log-level INFO)"
    )
    parser.add_argument(
        "--log-level",
        type=str.upper,
        choices=("DEBUG", "INFO", "WARNING", "ERROR"),
        help="how much to log (default WARNING; bot and worker: GRAMOPHONE_LOG_LEVEL, else INFO)",
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {_version()}")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)

    examples = argparse.RawDescriptionHelpFormatter
    build = commands.add_parser(
        "build",
        help="build a character library from a speech video",
        formatter_class=examples,
        description="Build a character library: the video is cut into overlapping 10-frame segments with "
        "acoustic "
        "fingerprints and mouth measures, framed on the face unless --crop says otherwise.",
        epilog="examples:\n  gramophone build grandma.mp4 --idle grandma-idle.mp4 -o grandma.gchar\n"
        "  gramophone build fox.mp4 --crop centre -o fox.gchar",
    )
    build.add_argument("speech_video", help="video of the character speaking, with its audio")
    build.add_argument("--idle", help="video of the character silent (blinks, mouth closed)")
    build.add_argument("-o", "--output", required=True, help="the character library file to write")
    build.add_argument("--size", type=int, default=512, help="frame side in pixels (default 512)")
    build.add_argument(
        "--crop",
        help="face (default: a square around the face of the first seconds), centre (the centred square, "
        "for drawn characters), or x,y,w,h in source pixels",
    )
    build.add_argument(
        "--jpeg-quality", type=int, default=85, help="JPEG quality of stored frames (default 85)"
    )
    build.set_defaults(handler=cmd_build)

    info = commands.add_parser(
        "info",
        help="show what a character library holds",
        formatter_class=examples,
        description="Frames, segments, idle source, crop and the mouth model of a library.",
        epilog="example:\n  gramophone info grandma.gchar",
    )
    info.add_argument("character", help="character library file")
    info.set_defaults(handler=cmd_info)

    render = commands.add_parser(
        "render",
        help="render a character saying an audio file",
        formatter_class=examples,
        description="Lip-sync a library to any audio ffmpeg reads: H.264 + AAC at 25 fps.",
        epilog="examples:\n  gramophone render grandma.gchar voice.ogg -o answer.mp4\n"
        "  gramophone render fox.gchar voice.ogg -o note.mp4 --video-note",
    )
    render.add_argument("character", help="character library file")
    render.add_argument("audio", help="any audio ffmpeg reads (ogg/opus, wav, mp3, m4a)")
    render.add_argument("-o", "--output", required=True, help="mp4 to write")
    render.add_argument("--size", type=int, help="output side in pixels (default: the library's)")
    render.add_argument(
        "--video-note", action="store_true", help="Telegram video note: square, <= 512 px, <= 60 s"
    )
    render.add_argument(
        "--planner", choices=("global", "greedy"), default="global", help="segment planner (default global)"
    )
    render.set_defaults(handler=cmd_render)

    say = commands.add_parser(
        "say",
        help="a character says a text (text-to-speech + render)",
        formatter_class=examples,
        description="Text to speech in the character's voice, rendered sentence by sentence.",
        epilog='examples:\n  gramophone say "Hello, little one!"            # writes fox-says.mp4\n'
        "  gramophone say --file story.txt --character grandma -o story.mp4\n"
        '  gramophone say "Привет!" --lang ru --video-note -o note.mp4',
    )
    say.add_argument("text", nargs="?", help="what to say")
    say.add_argument("--file", help="read the text from a file (long texts and stories)")
    say.add_argument(
        "--character", default="fox", help="character id (default fox; see `gramophone characters list`)"
    )
    say.add_argument("-o", "--output", help="mp4 to write (default: CHARACTER-says.mp4)")
    say.add_argument("--lang", help="language of the text (default: the character's)")
    say.add_argument("--voice", help="eSpeak NG voice, e.g. en-gb, ru, en-us+f3 (default: the character's)")
    say.add_argument("--rate", type=int, help="words per minute, 80-450 (default: the character's)")
    say.add_argument("--pitch", type=int, help="0-100, 50 is the voice's own (default: the character's)")
    say.add_argument(
        "--video-note", action="store_true", help="Telegram video note: square, <= 512 px, <= 60 s"
    )
    say.add_argument("--size", type=int, help="output side in pixels (default: the library's)")
    say.add_argument("--max-chars", type=int, default=10_000, help="refuse longer texts (default 10000)")
    say.set_defaults(handler=cmd_say)

    demo = commands.add_parser(
        "demo",
        help="the fox tells a bedtime story: builds it if needed, writes demo.mp4",
        formatter_class=examples,
        description="The main job on the embedded default: no token, "
        "no GPU, no server. Builds the fox on first use (about 30 s on one core).",
        epilog="examples:\n  gramophone demo\n  gramophone demo --story my-story.txt -o story.mp4",
    )
    demo.add_argument("-o", "--output", default="demo.mp4", help="mp4 to write (default demo.mp4)")
    demo.add_argument("--character", default="fox", help="character id (default fox)")
    demo.add_argument("--story", help="a story file: a title line, a blank line, the text")
    demo.set_defaults(handler=cmd_demo)

    characters = commands.add_parser(
        "characters",
        help="list, build, inspect or make characters",
        description="The characters: the built-in ones and those made from a picture "
        "($GRAMOPHONE_DATA_DIR/characters, by default data/characters, shared with the bot).",
    )
    actions = characters.add_subparsers(dest="action", metavar="ACTION", required=True)
    listing = actions.add_parser(
        "list",
        help="every character, and whether its library is built",
        epilog="example: gramophone characters list",
    )
    listing.set_defaults(handler=cmd_characters_list)
    building = actions.add_parser(
        "build",
        help="build the libraries not built yet (or --rebuild)",
        epilog="example: gramophone characters build fox --rebuild",
    )
    building.add_argument("id", nargs="?", help="one character (default: all)")
    building.add_argument(
        "--rebuild", action="store_true", help="build again even if built (upgrades old libraries)"
    )
    building.set_defaults(handler=cmd_characters_build)
    inspecting = actions.add_parser(
        "info", help="what a character's library holds", epilog="example: gramophone characters info fox"
    )
    inspecting.add_argument("id", nargs="?", help="one character (default: all)")
    inspecting.set_defaults(handler=cmd_characters_info)
    making = actions.add_parser(
        "make",
        help="make a new character from one picture, on the CPU",
        description="Make a character from one picture (photo, painting or drawing): the lips, jaw and eyes "
        "are found by the face landmark model, or given with --mouth and --eyes (animals, drawings), and "
        "the picture is animated reading the passages in the character's voice, then built. The twin of "
        "the bot's /newcharacter.",
        epilog="examples:\n  gramophone characters make grandma.jpg --name Grandma\n"
        "  gramophone characters make cat.png --name Tom --mouth 250,410 --eyes 190,260,310,262\n"
        "  gramophone characters make dog.jpg --name Rex --mouth 128,190 --mouth-width 50 \\\n"
        "      --eyes 104,112,152,112 --open-mouth 128,186,128,206",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    making.add_argument("picture", help="JPEG, PNG, WebP or BMP")
    making.add_argument("--name", required=True, help="the character's name, as children will see it")
    making.add_argument("--language", default="en", help="what it speaks: en, ru, ... (default en)")
    making.add_argument("--voice", help="eSpeak NG voice, e.g. en-us+f3 (default: the language's own)")
    making.add_argument(
        "--mouth", metavar="X,Y", help="centre of the mouth, in picture pixels (no face found)"
    )
    making.add_argument("--eyes", metavar="X1,Y1,X2,Y2", help="centres of the two eyes, in picture pixels")
    making.add_argument(
        "--mouth-width", type=float, metavar="W", help="corner to corner, in picture pixels (with --mouth)"
    )
    making.add_argument(
        "--open-mouth",
        metavar="X1,Y1,X2,Y2",
        help="a mouth open in the picture (a panting dog): the middle of the upper lip's edge, then of the "
        "lower lip's (with --mouth)",
    )
    making.add_argument(
        "--into", metavar="FOLDER", help="characters folder (default $GRAMOPHONE_DATA_DIR/characters)"
    )
    making.add_argument("--size", type=int, default=512, help="frame side in pixels (default 512)")
    making.set_defaults(handler=cmd_characters_make)

    for entry_point in entry_points(group="gramophone.commands"):
        entry_point.load()(commands)
    return parser


def log_level(args: argparse.Namespace) -> str | None:
    """The level asked for on the command line (``--log-level``, or ``-v`` for INFO), or None."""
    return args.log_level or ("INFO" if args.verbose else None)


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(level=log_level(args) or "WARNING", format="%(levelname)s %(name)s: %(message)s")
    try:
        return int(args.handler(args) or 0)
    except InputError as error:
        print(f"gramophone: error: {error}", file=sys.stderr)
        return 2
    except GramophoneError as error:
        print(f"gramophone: error: {error}", file=sys.stderr)
        return 1
    except OSError as error:  # the machine, not the input: a full disk, a folder we may not write
        where = f": {error.filename}" if getattr(error, "filename", None) else ""
        print(f"gramophone: error: {error.strerror or error}{where}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("gramophone: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
