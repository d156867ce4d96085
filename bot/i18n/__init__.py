"""The message catalogue: every text the bot itself says, in English and Simplified Chinese.

An entry is a string, or for a text that says a number of things, its plural forms by CLDR category
(``one``, ``other``; a language has the categories it needs, at least ``other``): the form is chosen by
the ``count`` value the text is formatted with.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Literal

from bot.i18n.slack import SLACK_EN, SLACK_ZH

Language = Literal["en", "zh"]
PluralCategory = Literal["one", "other"]
Entry = str | Mapping[PluralCategory, str]

_EN: dict[str, Entry] = {
    "stats_title": "📊 gembot stats",
    "stats_window": (
        "[{window}] answered {answered}, failed {failed}\n"
        "Gemini requests {requests}, success {rate}\n"
        "latency P50 {p50} / P90 {p90} / P95 {p95}\n"
        "errors: {errors}\n"
        "refused: {refused}\n"
        "active: {conversations}, {users}\n"
        "tokens: {tokens_in} in, {tokens_out} out; summary requests {summaries}"
    ),
    "stats_no_errors": "none",
    "stats_separator": ", ",
    "stats_refused_filter": "filter {count}",
    "stats_refused_rate_limit": "rate limit {count}",
    "stats_refused_quota": "quota {count}",
    "stats_refused_budget": "budget {count}",
    "stats_top_users": "top users [{window}]: {ranked}",
    "stats_satisfaction": "satisfaction [{window}]: 👍 {share} ({up} 👍, {down} 👎)",
    "stats_no_votes": "satisfaction [{window}]: no votes",
    "stats_none": "none",
    "stats_conversations": {"one": "{count} conversation", "other": "{count} conversations"},
    "stats_users": {"one": "{count} user", "other": "{count} users"},
    "stats_quota": "quota: {quota}",
    "stats_tools": "tools: {tools}",
    "stats_tool_searches": {"one": "{count} search", "other": "{count} searches"},
    "stats_tool_links": {"one": "{count} link read", "other": "{count} links read"},
    "stats_tool_code_runs": {"one": "{count} code run", "other": "{count} code runs"},
    "help": (
        "Hi! I am {bot_name}, an assistant powered by Google Gemini. Send me a message and I will answer; "
        "{memory}\n\n"
        "Privacy: your messages are processed by Google Gemini. Conversation text is kept for at most "
        "{retention} and then deleted.\n\n"
        "Commands:\n"
        "{prefix}help - this text\n"
        "{prefix}reset - forget this conversation's context{reset_scope}\n"
        "{prefix}forget - erase every message you sent me, in every conversation\n"
        "{prefix}model - list or switch this chat's model\n"
        "{prefix}persona - list or pick a persona, or set your own instruction\n"
        "{prefix}settings - this chat's settings (changed by anyone in a private chat, by admins elsewhere)\n"
        "{prefix}usage - your own use and budgets\n"
        "{platform_commands}"
        "{prefix}stats - usage statistics (admins only)"
    ),
    "reset_scope_group": " (admins only in groups and channels)",
    "help_memory": {
        "one": "I remember the last exchange of this conversation.",
        "other": "I remember the last {count} exchanges of this conversation.",
    },
    "reset_done": {
        "one": "Done: this conversation starts afresh ({count} exchange forgotten).",
        "other": "Done: this conversation starts afresh ({count} exchanges forgotten).",
    },
    "reset_denied": "Only an admin can reset the conversation here.",
    "reset_nothing": (
        "There is no conversation here to reset yet. In a channel each thread (in a forum, each topic) "
        "is a conversation of its own: reset it from inside."
    ),
    "stats_denied": "Sorry, /stats is for admins only.",
    "feedback_good": "Good answer",
    "feedback_bad": "Bad answer",
    "feedback_thanks": "Thanks for your feedback!",
    "forget_done": {
        "one": "Done: {count} exchange you started was erased, in every conversation.",
        "other": "Done: {count} exchanges you started were erased, in every conversation.",
    },
    "settings_denied": "Only an admin can change this chat's settings here; anyone can in a private chat.",
    "model_list": "Models for this chat (▶ = current):\n{models}\nSwitch with {prefix}model NAME.",
    "model_unknown": "There is no model {name} here.\n{models}",
    "model_done": "Done: this chat now uses {model}.",
    "persona_list": (
        "Personas (▶ = current):\n{personas}\n"
        "Pick one with {prefix}persona NAME, {prefix}persona off, or set your own instruction with "
        "{prefix}persona custom TEXT."
    ),
    "persona_none_preset": "(none configured)",
    "persona_off_name": "none",
    "persona_custom_name": "custom instruction",
    "persona_unknown": "There is no persona {name} here.\n{personas}",
    "persona_done": "Done: this chat's persona is now {name}.",
    "persona_off": "Done: this chat has no persona now.",
    "persona_custom_done": "Done: this chat now follows your instruction ({length} characters).",
    "persona_custom_empty": "Write the instruction after {prefix}persona custom.",
    "persona_custom_too_long": (
        "The instruction is too long ({length} characters; the limit is {limit}). Please shorten it."
    ),
    "persona_custom_filtered": "The instruction contains words that are not allowed here, so it was not set.",
    "settings_show": (
        "This chat's settings:\nmodel: {model}\npersona: {persona}\nlanguage: {lang_name}\n"
        "search: {search}\nthought summaries: {thoughts}\n\n"
        "Change them with {prefix}model NAME, {prefix}persona NAME, {prefix}settings search on|off and "
        "{prefix}settings thoughts on|off."
    ),
    "settings_usage": "Use {prefix}settings search on|off or {prefix}settings thoughts on|off.",
    "settings_done": "Done: {switch} is {state} in this chat.",
    "switch_search": "search",
    "switch_thoughts": "thought summaries",
    "state_on": "on",
    "state_off": "off",
    "state_default": "default",
    "language_name": "English",
    "usage_messages": {"one": "{count} message", "other": "{count} messages"},
    "usage_tokens": {"one": "{count} token", "other": "{count} tokens"},
    "usage_budget": "{used} of {limit} ({percent}%), frees in {wait}",
    "usage_no_budget": "{used}, no budget",
    "usage_report": (
        "Your use of Gemini\ntoday: {day_messages}; {day_tokens}\n"
        "this month: {month_messages}; {month_tokens}"
    ),
    "over_budget_day": (
        "You have used up your daily Gemini budget. It frees in {wait} (at {at} UTC); until then I cannot "
        "answer you."
    ),
    "over_budget_month": (
        "You have used up your monthly Gemini budget. It frees in {wait} (on {at} UTC); until then I cannot "
        "answer you."
    ),
    "unknown_command": "Unknown command. Send {prefix}help to see what I can do.",
    "empty": "Your message is empty. Please send some text.",
    "too_long": (
        "Your message is too long ({length} characters; the limit is {limit}). "
        "Please shorten it or split it up."
    ),
    "unsupported": (
        "Sorry, I cannot read this kind of message. Send text, or a voice note, audio, a photo, a video or a "
        "document (PDF, text, CSV), with or without a question."
    ),
    "not_allowed_chat": "Sorry, this bot is not available in this chat.",
    "rate_limited": "You are sending messages too quickly. Please try again in {retry}.",
    "rate_limited_chat": "This chat is sending messages too quickly. Please try again in {retry}.",
    "quota": "The bot has used up its Gemini quota for now. Please try again in {retry}.",
    "filtered": "Your message contains words that are not allowed here, so it was not sent.",
    "reply_filtered": "The answer contained words that are not allowed here, so it was withheld.",
    "safety_prompt": "Gemini's safety system blocked your message ({reason}). Please rephrase it.",
    "safety_reply": "Gemini's safety system stopped the answer ({reason}).",
    "stopped_reply": "Gemini stopped the answer early ({reason}). Please try again or rephrase.",
    "media_disabled": "Sorry, I do not read files here: please send your message as text.",
    "media_too_many": (
        "You sent {count} files; I read at most {limit} per message. Please send fewer at a time."
    ),
    "media_too_large": "{name} is too large ({size}); I read files of up to {limit}.",
    "media_unavailable": "I could not download {name}. Please send it again.",
    "media_unsupported": (
        "I cannot read {name} ({type}). I read images (PNG, JPEG, WebP, HEIC), audio (voice notes, MP3, "
        "WAV, OGG, FLAC, AAC, AIFF), video (MP4, MOV, WebM, MPEG, AVI, 3GP), PDF and text documents "
        "(plain text, Markdown, CSV, HTML, XML, code)."
    ),
    "media_misnamed": "{name} is not what its name says (its contents are {type}). Please check the file.",
    "media_upload_failed": "I could not hand {name} to Gemini just now. Please try again in a few minutes.",
    "media_rejected": "Gemini could not read the file you sent ({reason}). Please check it or send another.",
    "media_gone": "[{name} is no longer available]",
    "media_earlier_gone": (
        "A file sent earlier in this conversation is no longer available to Gemini. Please send your "
        "message again (and the file, if it is still needed)."
    ),
    "media_file": "the file",
    "bad_request": "Gemini could not process this request. Please rephrase or shorten it, or /reset.",
    "bad_key": "The bot cannot reach Gemini because its API key is not accepted. The admins have been told.",
    "misconfigured": "The bot is misconfigured and cannot answer right now. The admins have been told.",
    "unavailable": "Gemini is unavailable right now. Please try again in a few minutes.",
    "gemini_busy": "Gemini is rate-limiting the bot. Please try again in {retry}.",
    "cut": "(The answer was cut off before it finished; please ask again.)",
    "truncated": "(The answer reached the length limit and was cut here.)",
    "sources": "Sources",
    "searches": "Searched",
    "thoughts": "Thoughts",
    "urls_failed": "Could not open {urls}.",
    "empty_reply": "Gemini returned no answer text. Please try again or rephrase.",
    "length_no_text": (
        "Gemini reached the answer length limit before writing any text (its thinking used it up). "
        "Please ask a narrower question."
    ),
    "error": "Something went wrong on my side. Please try again.",
    "alert_bad_key": "gembot: Gemini rejects the API key ({detail}). Users are getting errors.",
    "alert_misconfigured": (
        "gembot: Gemini refuses the configuration for model {model} ({detail}: {reason}). "
        "Users are getting errors."
    ),
    "console_banner": (
        "gembot console, model {model}. Type a message; /attach PATH [text] sends a file; /help for "
        "commands; exit, quit or 退出 to leave."
    ),
    "retry_soon": "a few seconds",
    "unit_day": {"one": "{count} day", "other": "{count} days"},
    "unit_hour": {"one": "{count} hour", "other": "{count} hours"},
    "unit_minute": {"one": "{count} minute", "other": "{count} minutes"},
    "unit_second": {"one": "{count} second", "other": "{count} seconds"},
    "resend": "Sorry, I was restarted before I could answer this message. Please send it again.",
    "gemini_quota": "Gemini's quota for this bot is used up until it resets. Please try again in {retry}.",
    "request_too_large": (
        "Your message with this conversation's context is too large for Gemini, even with older messages "
        "left out. Please shorten it, or /reset."
    ),
    "safety_reason_safety": "possibly harmful content",
    "safety_reason_prohibited_content": "prohibited content",
    "safety_reason_blocklist": "terms on a block list",
    "safety_reason_spii": "sensitive personal information",
    "safety_reason_recitation": "too close to existing published material",
    "safety_reason_image_safety": "an unsafe image",
    "safety_reason_language": "a language Gemini does not support here",
    "safety_reason_other": "an unspecified reason",
}

_ZH: dict[str, Entry] = {
    "stats_title": "📊 gembot 统计",
    "stats_window": (
        "【{window}】回答 {answered}，失败 {failed}\n"
        "Gemini 请求 {requests}，成功率 {rate}\n"
        "延迟 P50 {p50} / P90 {p90} / P95 {p95}\n"
        "错误：{errors}\n"
        "拒绝：{refused}\n"
        "活跃：{conversations}，{users}\n"
        "tokens：入 {tokens_in}，出 {tokens_out}；摘要请求 {summaries}"
    ),
    "stats_no_errors": "无",
    "stats_separator": "，",
    "stats_refused_filter": "过滤 {count}",
    "stats_refused_rate_limit": "限速 {count}",
    "stats_refused_quota": "配额 {count}",
    "stats_refused_budget": "预算 {count}",
    "stats_top_users": "tokens 最多 [{window}]：{ranked}",
    "stats_satisfaction": "满意度 [{window}]：👍 {share}（👍 {up}，👎 {down}）",
    "stats_no_votes": "满意度 [{window}]：暂无评价",
    "stats_none": "无",
    "stats_conversations": {"other": "对话 {count}"},
    "stats_users": {"other": "用户 {count}"},
    "stats_quota": "配额：{quota}",
    "stats_tools": "工具：{tools}",
    "stats_tool_searches": {"other": "搜索 {count}"},
    "stats_tool_links": {"other": "读取链接 {count}"},
    "stats_tool_code_runs": {"other": "运行代码 {count}"},
    "help": (
        "你好！我是 {bot_name}，由 Google Gemini 驱动的助手。给我发消息我就会回答；"
        "{memory}\n\n"
        "隐私：你的消息由 Google Gemini 处理。对话文本最多保留 {retention}，之后删除。\n\n"
        "命令：\n"
        "{prefix}help - 显示本说明\n"
        "{prefix}reset - 清除本对话的上下文{reset_scope}\n"
        "{prefix}forget - 删除你发给我的所有消息（所有对话）\n"
        "{prefix}model - 查看或切换本聊天的模型\n"
        "{prefix}persona - 查看或选择人设，或设置你自己的指令\n"
        "{prefix}settings - 本聊天的设置（私聊中任何人可改，其他地方仅管理员）\n"
        "{prefix}usage - 你自己的用量与预算\n"
        "{platform_commands}"
        "{prefix}stats - 使用统计（仅管理员）"
    ),
    "reset_scope_group": "（群组和频道中仅管理员可用）",
    "help_memory": {"other": "我会记住本对话最近 {count} 轮内容。"},
    "reset_done": {"other": "完成：本对话已重新开始（清除了 {count} 轮）。"},
    "reset_denied": "在这里只有管理员可以重置对话。",
    "reset_nothing": (
        "这里还没有可以重置的对话。在频道中每个话题串（论坛中每个主题）都是独立的对话：请在其中重置。"
    ),
    "stats_denied": "抱歉，/stats 仅限管理员使用。",
    "feedback_good": "回答有帮助",
    "feedback_bad": "回答没有帮助",
    "feedback_thanks": "感谢你的反馈！",
    "forget_done": {"other": "完成：已删除你发起的 {count} 轮对话（所有对话）。"},
    "settings_denied": "在这里只有管理员可以更改本聊天的设置；私聊中任何人都可以。",
    "model_list": "本聊天可用的模型（▶ = 当前）：\n{models}\n用 {prefix}model 名称 切换。",
    "model_unknown": "这里没有模型 {name}。\n{models}",
    "model_done": "完成：本聊天现在使用 {model}。",
    "persona_list": (
        "人设（▶ = 当前）：\n{personas}\n"
        "用 {prefix}persona 名称 选择，{prefix}persona off 关闭，"
        "或用 {prefix}persona custom 文字 设置你自己的指令。"
    ),
    "persona_none_preset": "（未配置）",
    "persona_off_name": "无",
    "persona_custom_name": "自定义指令",
    "persona_unknown": "这里没有人设 {name}。\n{personas}",
    "persona_done": "完成：本聊天的人设现在是 {name}。",
    "persona_off": "完成：本聊天现在没有人设。",
    "persona_custom_done": "完成：本聊天现在遵循你的指令（{length} 个字符）。",
    "persona_custom_empty": "请在 {prefix}persona custom 后面写上指令。",
    "persona_custom_too_long": "指令太长了（{length} 个字符，上限 {limit}）。请缩短。",
    "persona_custom_filtered": "指令包含不允许的词语，因此没有设置。",
    "settings_show": (
        "本聊天的设置：\n模型：{model}\n人设：{persona}\n语言：{lang_name}\n"
        "搜索：{search}\n思考摘要：{thoughts}\n\n"
        "用 {prefix}model 名称、{prefix}persona 名称、{prefix}settings search on|off 和 "
        "{prefix}settings thoughts on|off 更改。"
    ),
    "settings_usage": "用法：{prefix}settings search on|off 或 {prefix}settings thoughts on|off。",
    "settings_done": "完成：本聊天的{switch}已设为{state}。",
    "switch_search": "搜索",
    "switch_thoughts": "思考摘要",
    "state_on": "开",
    "state_off": "关",
    "state_default": "默认",
    "language_name": "中文",
    "usage_messages": {"other": "{count} 条消息"},
    "usage_tokens": {"other": "{count} 个 token"},
    "usage_budget": "{used}，预算 {limit}（{percent}%），{wait} 后重置",
    "usage_no_budget": "{used}，无预算",
    "usage_report": (
        "你的 Gemini 用量\n今天：{day_messages}；{day_tokens}\n本月：{month_messages}；{month_tokens}"
    ),
    "over_budget_day": "你今天的 Gemini 预算已用完，{wait} 后（UTC {at}）恢复；在此之前我无法回答你。",
    "over_budget_month": "你本月的 Gemini 预算已用完，{wait} 后（UTC {at}）恢复；在此之前我无法回答你。",
    "unknown_command": "未知命令。发送 {prefix}help 查看我能做什么。",
    "empty": "你的消息是空的，请发送一些文字。",
    "too_long": "你的消息太长了（{length} 个字符，上限 {limit}）。请缩短或分开发送。",
    "unsupported": (
        "抱歉，我无法读取这类消息。请发送文字，或语音、音频、图片、视频、文档（PDF、文本、CSV），可附带问题。"
    ),
    "not_allowed_chat": "抱歉，此聊天中不提供本机器人。",
    "rate_limited": "你发送消息太快了，请在 {retry} 后再试。",
    "rate_limited_chat": "本聊天发送消息太快了，请在 {retry} 后再试。",
    "quota": "机器人暂时用完了 Gemini 配额，请在 {retry} 后再试。",
    "filtered": "你的消息包含不允许的词语，因此没有发送。",
    "reply_filtered": "回答中包含不允许的词语，已被拦截。",
    "safety_prompt": "Gemini 的安全系统拦截了你的消息（{reason}）。请换个说法。",
    "safety_reply": "Gemini 的安全系统中止了回答（{reason}）。",
    "stopped_reply": "Gemini 提前结束了回答（{reason}）。请重试或换个说法。",
    "media_disabled": "抱歉，这里我不读取文件，请以文字发送你的消息。",
    "media_too_many": "你发送了 {count} 个文件；每条消息我最多读取 {limit} 个。请分批发送。",
    "media_too_large": "{name} 太大了（{size}）；我能读取的文件最大为 {limit}。",
    "media_unavailable": "我无法下载 {name}，请再发送一次。",
    "media_unsupported": (
        "我无法读取 {name}（{type}）。我能读取图片（PNG、JPEG、WebP、HEIC）、音频（语音消息、MP3、WAV、OGG、"
        "FLAC、AAC、AIFF）、视频（MP4、MOV、WebM、MPEG、AVI、3GP）、PDF 以及文本文档（纯文本、Markdown、CSV、"
        "HTML、XML、代码）。"
    ),
    "media_misnamed": "{name} 与其文件名不符（其内容是 {type}）。请检查这个文件。",
    "media_upload_failed": "我暂时无法把 {name} 交给 Gemini，请几分钟后再试。",
    "media_rejected": "Gemini 无法读取你发送的文件（{reason}）。请检查文件或换一个发送。",
    "media_gone": "[{name} 已不再可用]",
    "media_earlier_gone": (
        "本对话中之前发送的一个文件已无法再提供给 Gemini。"
        "请重新发送你的消息（如仍需要，也请重新发送该文件）。"
    ),
    "media_file": "该文件",
    "bad_request": "Gemini 无法处理这个请求。请换个说法、缩短内容，或使用 /reset。",
    "bad_key": "机器人无法连接 Gemini：API 密钥未被接受。已通知管理员。",
    "misconfigured": "机器人配置有误，暂时无法回答。已通知管理员。",
    "unavailable": "Gemini 暂时不可用，请几分钟后再试。",
    "gemini_busy": "Gemini 正在限制机器人的请求频率，请在 {retry} 后再试。",
    "cut": "（回答在完成前被中断了，请重新提问。）",
    "truncated": "（回答达到长度上限，在此处被截断。）",
    "sources": "来源",
    "searches": "搜索",
    "thoughts": "思考过程",
    "urls_failed": "无法打开 {urls}。",
    "empty_reply": "Gemini 没有返回回答文本。请重试或换个说法。",
    "length_no_text": "Gemini 在写出任何回答之前就达到了长度上限（思考用完了额度）。请把问题问得更具体一些。",
    "error": "我这边出了点问题，请再试一次。",
    "alert_bad_key": "gembot：Gemini 拒绝了 API 密钥（{detail}），用户正在收到错误。",
    "alert_misconfigured": (
        "gembot：Gemini 拒绝了模型 {model} 的配置（{detail}：{reason}），用户正在收到错误。"
    ),
    "console_banner": (
        "gembot 控制台，模型 {model}。输入消息；/attach 路径 [文字] 发送文件；/help 查看命令；"
        "exit、quit 或 退出 离开。"
    ),
    "retry_soon": "几秒钟",
    "unit_day": {"other": "{count} 天"},
    "unit_hour": {"other": "{count} 小时"},
    "unit_minute": {"other": "{count} 分钟"},
    "unit_second": {"other": "{count} 秒"},
    "resend": "抱歉，我在回答这条消息之前重启了。请再发送一次。",
    "gemini_quota": "Gemini 给本机器人的配额已用完，需等待重置。请在 {retry} 后再试。",
    "request_too_large": (
        "你的消息连同本对话的上下文对 Gemini 来说太大了，即使去掉较早的消息也不行。"
        "请缩短内容，或使用 /reset。"
    ),
    "safety_reason_safety": "可能有害的内容",
    "safety_reason_prohibited_content": "被禁止的内容",
    "safety_reason_blocklist": "屏蔽词",
    "safety_reason_spii": "敏感个人信息",
    "safety_reason_recitation": "与已发表内容过于相似",
    "safety_reason_image_safety": "不安全的图片",
    "safety_reason_language": "Gemini 在此不支持的语言",
    "safety_reason_other": "未说明的原因",
}

CATALOGUE: Mapping[Language, Mapping[str, Entry]] = {"en": {**_EN, **SLACK_EN}, "zh": {**_ZH, **SLACK_ZH}}


def plural_category(language: Language, count: int) -> PluralCategory:
    """The CLDR plural category of the integer ``count`` in ``language`` (Chinese has only ``other``)."""
    if language == "en" and count == 1:
        return "one"
    return "other"


def pick_language(platform_language: str | None, default: Language) -> Language:
    """The user's language where the platform gives one we speak, else the configured default."""
    if platform_language:
        tag = platform_language.strip().lower().replace("_", "-")
        if tag.startswith("zh"):
            return "zh"
        if tag.startswith("en"):
            return "en"
    return default


def text(language: Language, key: str, **values: object) -> str:
    """The catalogue entry ``key`` in ``language``, formatted with ``values``.

    A plural entry needs an integer ``count`` among ``values``: it picks the form.
    """
    entry = CATALOGUE[language][key]
    if not isinstance(entry, str):
        count = values.get("count")
        if not isinstance(count, int) or isinstance(count, bool):
            raise TypeError(f"the catalogue entry {key!r} needs an integer count, got {count!r}")
        entry = entry.get(plural_category(language, count), entry["other"])
    return entry.format(**values)


def format_wait(seconds: float, language: Language) -> str:
    """A human duration for 'try again in ...': the two largest units."""
    seconds = max(1, round(seconds))
    parts = []
    for unit, size in (("unit_day", 86400), ("unit_hour", 3600), ("unit_minute", 60), ("unit_second", 1)):
        if seconds >= size:
            amount, seconds = divmod(seconds, size)
            parts.append(text(language, unit, count=amount))
        if len(parts) == 2:
            break
    return " ".join(parts)
