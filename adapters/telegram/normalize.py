"""Telegram updates turned into platform-neutral ``Incoming`` messages (pure: no network)."""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass

from telegram import Message, MessageEntity, Update
from telegram.constants import ChatType, MessageType

from adapters.telegram.media import MediaFile, message_files
from bot.commands import COMMANDS
from bot.config import MediaSettings, TelegramSettings
from bot.domain import Incoming, MessageKind, Platform

# Content the bot cannot pass to Gemini: answered with the engine's "unsupported" notice. (An animation
# also carries a ``document`` field, for older clients: it is caught here first.)
_UNSUPPORTED_FIELDS = (
    "animation",
    "location",
    "venue",
    "contact",
    "poll",
    "dice",
    "game",
    "story",
    "invoice",
    "paid_media",
    "checklist",
    "live_photo",
)
# Message fields that describe a message rather than carry content or a service event.
_METADATA_FIELDS = frozenset(
    {
        "business_connection_id",
        "effect_id",
        "reply_to_story",
        "sender_boost_count",
        "sender_business_bot",
        "suggested_post_info",
    }
)


ANONYMOUS_ADMIN_PREFIX = "anon:"


def anonymous_admin_id(chat_id: int | str) -> str:
    """The user id of a group's anonymous admins (they post as the group, so who is unknown)."""
    return f"{ANONYMOUS_ADMIN_PREFIX}{chat_id}"


@dataclass(frozen=True, slots=True)
class BotIdentity:
    """Who the bot is on Telegram (from getMe)."""

    id: int
    username: str


@dataclass(frozen=True, slots=True)
class Target:
    """Where and how one answer is shown."""

    chat_id: int
    is_private: bool
    thread_id: int | None = None
    reply_to: int | None = None  # the user's message, quoted in groups
    draft_id: int = 1


@dataclass(frozen=True, slots=True)
class Normalized:
    """An update the engine should see, where to answer it, the files to fetch first, and the album
    (``media_group_id``) it is a part of."""

    incoming: Incoming
    target: Target
    files: tuple[MediaFile, ...] = ()
    album: str | None = None


def ordering_key(update: object) -> tuple[int, int] | None:
    """The conversation an update belongs to (chat and forum topic), for in-order processing."""
    if not isinstance(update, Update) or update.effective_chat is None:
        return None
    message = update.effective_message
    thread = message.message_thread_id if message is not None and message.is_topic_message else None
    return (update.effective_chat.id, thread or 0)


def _command(
    message: Message, text: str, entities: Sequence[MessageEntity], me: BotIdentity, *, private: bool
) -> tuple[str | None, str] | None:
    """(command, its arguments) of a message that starts with one, (None, "") of one that does not, None
    when the command is for another bot (or, in a group, not one of the bot's)."""
    first = entities[0] if entities else None
    if first is None or first.type != MessageEntity.BOT_COMMAND or first.offset != 0:
        return None, ""
    token = _entity_text(message, first)
    if not token:
        return None, ""
    name, _, addressee = token[1:].partition("@")
    if addressee and addressee.lower() != me.username.lower():
        return None
    name = name.lower()
    if not private and not addressee and name not in COMMANDS:
        return None
    return name, text[len(token) :].strip()


def _sender(message: Message, *, anonymous_admin: bool) -> tuple[str, str, str | None]:
    """(user id, display name, language) of the message's sender."""
    if anonymous_admin:
        chat = message.chat
        # The language is GroupAnonymousBot's, not the admin's.
        return anonymous_admin_id(chat.id), message.author_signature or chat.title or "Admin", None
    user = message.from_user
    assert user is not None
    user_id = str(user.id)
    return user_id, user.first_name or user.username or user_id, user.language_code


def normalize(
    update: Update, me: BotIdentity, settings: TelegramSettings, media: MediaSettings | None = None
) -> Normalized | None:
    """The ``Incoming`` for a new user message, or None for anything the bot does not answer.

    Ignored: edits, channel posts, other bots, messages posted as a channel (a linked channel's posts, users
    speaking as their channel), service messages, and commands addressed to another bot (``/cmd@other_bot``,
    or in groups a bare command the bot does not have). A message posted as the group itself is from one of
    its anonymous admins (``from`` is then Telegram's GroupAnonymousBot): its user id is
    :func:`anonymous_admin_id` of the group, and it is ``sent_as_chat``, so it counts as an admin's only
    in a group whose own (negative) id is in ``telegram.admin_ids``: being a group's admin is not enough by
    itself, anyone can create a group.

    Files (photos, static stickers, voice notes, audio, videos, video notes, documents) are listed to be
    fetched; a caption is the text, and a file without one is sent as it is. A question in reply to a
    message with a file is asked about that file. With ``media.enabled`` off, or for content Gemini
    cannot be given (an animated sticker, a location...), the message is ``UNSUPPORTED``.
    """
    media = media or MediaSettings()
    message = update.message
    if message is None or message.from_user is None:
        return None
    chat = message.chat
    anonymous_admin = message.sender_chat is not None and message.sender_chat.id == chat.id
    if message.sender_chat is not None and not anonymous_admin:
        return None
    if message.from_user.is_bot and not anonymous_admin:
        return None
    private = chat.type == ChatType.PRIVATE
    text = message.text if message.text is not None else (message.caption or "")
    entities = message.entities if message.text is not None else message.caption_entities

    parsed = _command(message, text, entities, me, private=private)
    if parsed is None:
        return None
    command, command_args = parsed

    mentioned = any(_mentions(message, entity, me) for entity in entities)
    replied = message.reply_to_message
    reply_to_bot = replied is not None and replied.from_user is not None and replied.from_user.id == me.id
    addressed = private or command is not None or mentioned or reply_to_bot or settings.group_trigger == "all"

    files: tuple[MediaFile, ...] = ()
    kind = MessageKind.TEXT
    if command is None:
        text = _strip_mention(text, me.username)
        found = None if _unsupported(message) else message_files(message, media.max_bytes)
        if found is None or (found and not media.enabled):
            kind = MessageKind.UNSUPPORTED  # also with a caption: the content itself cannot be passed on
        elif found:
            files = found
        elif message.text is None and message.caption is None:
            return None  # a service message: members joined, title changed, pinned...
        elif replied is not None and text.strip() and media.enabled and not _unsupported(replied):
            files = message_files(replied, media.max_bytes) or ()  # "what is in this picture?"

    user_id, user_name, language = _sender(message, anonymous_admin=anonymous_admin)
    topic = message.message_thread_id if message.is_topic_message else None
    incoming = Incoming(
        platform=Platform.TELEGRAM,
        chat_key=str(chat.id),
        thread_key=str(topic) if topic else "",
        user_id=user_id,
        user_name=user_name,
        text=text if command is None else command_args,
        event_id=f"{chat.id}:{message.message_id}",
        is_private=private,
        addressed_to_bot=addressed,
        language=language,
        command=command,
        command_args=command_args,
        kind=kind,
        reply_ids={"chat_id": str(chat.id), "message_id": str(message.message_id)},
        sent_as_chat=anonymous_admin and not private,
    )
    target = Target(
        chat_id=chat.id,
        is_private=private,
        thread_id=topic,
        reply_to=None if private else message.message_id,
        draft_id=message.message_id,
    )
    return Normalized(incoming, target, files, message.media_group_id if files else None)


def _unsupported(message: Message) -> bool:
    """Whether the message holds content that cannot be passed on (or only fields PTB does not know)."""
    return any(getattr(message, name, None) for name in _UNSUPPORTED_FIELDS) or _unknown_content(message)


def _unknown_content(message: Message) -> bool:
    """Whether the message holds only fields PTB does not know (content from a newer Bot API)."""
    if not message.api_kwargs:
        return False
    return not any(
        getattr(message, kind.value, None) for kind in MessageType if kind.value not in _METADATA_FIELDS
    )


def _entity_text(message: Message, entity: MessageEntity) -> str:
    """The text an entity covers; "" when its UTF-16 offsets split a character, or when it belongs to a
    text the message does not have (such entities mean nothing and are ignored)."""
    try:
        # An empty text is no text to PTB, which refuses to parse an entity of it.
        if message.text:
            return message.parse_entity(entity)
        if message.caption:
            return message.parse_caption_entity(entity)
    except UnicodeDecodeError:
        pass
    return ""


def _mentions(message: Message, entity: MessageEntity, me: BotIdentity) -> bool:
    if entity.type == MessageEntity.MENTION:
        return _entity_text(message, entity).lower() == f"@{me.username.lower()}"
    if entity.type == MessageEntity.TEXT_MENTION:
        return entity.user is not None and entity.user.id == me.id
    return False


def _strip_mention(text: str, username: str) -> str:
    """The text without the bot's @mention at its start or end (mid-sentence mentions stay)."""
    name = re.escape(username)
    text = re.sub(rf"^\s*@{name}\b[\s,:;.!?-]*", "", text, flags=re.IGNORECASE)
    return re.sub(rf"[\s,]*@{name}\s*$", "", text, flags=re.IGNORECASE)
