"""Texts of Slack's own surfaces: the assistant panel, summaries and the App Home tab (en and zh)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Final, Literal

_Entry = str | Mapping[Literal["one", "other"], str]

SLACK_EN: Final[dict[str, _Entry]] = {
    "assistant_greeting": "Hi! I'm Google Gemini in Slack. Ask me anything, or start with one of these.",
    "assistant_prompts_title": "Try one of these:",
    "prompt_summarize_title": "Summarise this channel",
    "prompt_summarize_message": "Summarise this channel",
    "prompt_explain_title": "Explain something simply",
    "prompt_explain_message": "Explain how large language models work, in simple terms and with an example.",
    "prompt_draft_title": "Draft a message",
    "prompt_draft_message": "Help me write a short, friendly message to my team. Ask me what it should say.",
    "prompt_ideas_title": "Brainstorm ideas",
    "prompt_ideas_message": "Let's brainstorm: ask me for the topic, then give me ten ideas.",
    "status_thinking": "is thinking…",
    "status_searching": "is searching the web…",
    "summary_request": (
        "Summarise the messages above: the main points, the decisions made and the open questions. "
        "Say who said what where it matters."
    ),
    "summary_thread_header": "The messages of a Slack thread, oldest first:",
    "summary_thread_tail_header": {
        "one": "The last message of a Slack thread:",
        "other": "The last {count} messages of a Slack thread, oldest first:",
    },
    "summary_channel_header": {
        "one": "The last message of a Slack channel:",
        "other": "The last {count} messages of a Slack channel, oldest first:",
    },
    "summary_not_in_channel": (
        "I can't read that channel: invite me to it first (/invite @gembot), then ask again."
    ),
    "summary_not_allowed": "I don't serve that channel, so I can't summarise it.",
    "summary_no_channel": (
        "Open the channel you want summarised beside this panel, then ask again: I summarise the channel "
        "you are looking at."
    ),
    "summary_empty": "There are no messages there to summarise.",
    "summary_failed": "I couldn't read those messages from Slack just now. Please try again.",
    "help_summarize": (
        "{prefix}summarize [N] - summarise this channel's last N messages (50 by default, at most 200), "
        "shown only to you\n"
        "@{bot_name} summarize [N] - the same, answered in the channel; in a thread, summarises the thread\n"
    ),
    "home_usage_title": "Your use",
    "home_settings_title": "Our direct messages",
    "home_settings": "Model: {model}\nPersona: {persona}",
    "home_persona_default": "none",
    "home_privacy_title": "Privacy",
    "home_privacy": (
        "I keep the text of our conversations for {retention}, so I can follow up on them; then it is "
        "deleted. Messages I read to summarise a thread or channel are sent to Gemini with that request "
        "only and not kept. Your use (message and token counts, no text) is counted for the budgets. "
        "{prefix}reset forgets one conversation; Forget me erases every exchange you started, everywhere."
    ),
    "home_forget_button": "Forget me",
    "home_forget_confirm_title": "Forget everything?",
    "home_forget_confirm_text": (
        "This erases every exchange you started with me, in every conversation. It cannot be undone."
    ),
    "home_forget_confirm_yes": "Forget me",
    "home_forget_confirm_no": "Cancel",
}

SLACK_ZH: Final[dict[str, _Entry]] = {
    "assistant_greeting": "你好！我是 Slack 里的 Google Gemini。有什么问题都可以问我，也可以从下面这些开始。",
    "assistant_prompts_title": "试试这些：",
    "prompt_summarize_title": "总结这个频道",
    "prompt_summarize_message": "总结这个频道",
    "prompt_explain_title": "通俗地解释",
    "prompt_explain_message": "用通俗的语言并举个例子，解释大语言模型是如何工作的。",
    "prompt_draft_title": "起草一条消息",
    "prompt_draft_message": "帮我给团队写一条简短友好的消息。先问我要写什么。",
    "prompt_ideas_title": "头脑风暴",
    "prompt_ideas_message": "我们来头脑风暴：先问我主题，然后给我十个点子。",
    "status_thinking": "正在思考…",
    "status_searching": "正在搜索网页…",
    "summary_request": "总结上面的消息：要点、已做的决定和未解决的问题。必要时说明是谁说的。",
    "summary_thread_header": "一个 Slack 讨论串的消息，按时间先后：",
    "summary_thread_tail_header": {"other": "一个 Slack 讨论串最近的 {count} 条消息，按时间先后："},
    "summary_channel_header": {"other": "一个 Slack 频道最近的 {count} 条消息，按时间先后："},
    "summary_not_in_channel": "我无法读取那个频道：请先邀请我加入（/invite @gembot），然后再问一次。",
    "summary_not_allowed": "我不服务于那个频道，所以无法总结它。",
    "summary_no_channel": "请在此面板旁打开你想总结的频道，然后再问一次：我总结的是你正在看的频道。",
    "summary_empty": "那里没有可以总结的消息。",
    "summary_failed": "我刚才无法从 Slack 读取这些消息，请再试一次。",
    "help_summarize": (
        "{prefix}summarize [N] - 总结本频道最近 N 条消息（默认 50 条，最多 200 条），仅你可见\n"
        "@{bot_name} summarize [N] - 同上，但在频道中回答；在讨论串中则总结该讨论串\n"
    ),
    "home_usage_title": "你的用量",
    "home_settings_title": "我们的私信",
    "home_settings": "模型：{model}\n角色：{persona}",
    "home_persona_default": "无",
    "home_privacy_title": "隐私",
    "home_privacy": (
        "我会保留我们对话的文本 {retention}，以便接着聊；之后会删除。"
        "为总结讨论串或频道而读取的消息只随那次请求发送给 Gemini，不会保留。"
        "你的用量（消息数和 token 数，不含文本）会为预算而统计。"
        "{prefix}reset 会忘记一个对话；“忘记我”会删除你在所有地方发起的每一轮对话。"
    ),
    "home_forget_button": "忘记我",
    "home_forget_confirm_title": "全部忘记？",
    "home_forget_confirm_text": "这会删除你在所有对话中与我发起的每一轮对话，且无法撤销。",
    "home_forget_confirm_yes": "忘记我",
    "home_forget_confirm_no": "取消",
}
