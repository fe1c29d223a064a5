//! Every fixture in `tests/fixtures/webhooks/` and `tests/fixtures/real-world/`
//! against the events it must produce, field by field; and a property test
//! that no body, however broken, makes the parser panic.

use super::*;
use crate::events::{
    Attachment, AttachmentType, Comment, Event, EventKind, Media, Mention, Message, MessageDeleted,
    MessageEdit, Postback, Reaction, ReactionAction, Referral, ReferralEvent, ReplyTo, Seen,
    StoryInsights,
};

const ACCOUNT: &str = "17841400000000001";
const USER: &str = "6543210987654321";
const MARIA: &str = "6543210987654322";

fn shared(path: &str) -> Vec<u8> {
    let path = format!("{}/../tests/fixtures/{path}", env!("CARGO_MANIFEST_DIR"));
    std::fs::read(&path).unwrap_or_else(|error| panic!("{path}: {error}"))
}

/// The fixtures' message ids differ only in three digits.
fn mid(n: &str) -> String {
    format!(
        "aWdfZAG1faXRlbToxOklHTWVzc2FnZAUlEOjE3ODQxNDAwMDAwMDAwMDAxOjM0MDI4MjM2Njg0MTcxMDMwMTI0NDI1ODE4NzUxOTk3OTcyODI5MjozMjM4NzQ4MDk1NTU2NDIxMjIzNDE1NjY3NTg0NzY4NDA5N{n}ZDZD"
    )
}

fn event(account: &str, timestamp_ms: u64, kind: EventKind) -> Event {
    Event {
        key: String::new(),
        account_id: account.into(),
        timestamp_ms,
        is_echo: false,
        is_self: false,
        is_standby: false,
        kind,
    }
}

fn text_message(n: &str, text: &str) -> Message {
    Message {
        mid: mid(n),
        sender_id: USER.into(),
        recipient_id: ACCOUNT.into(),
        text: Some(text.into()),
        ..Message::default()
    }
}

fn with_attachment(n: &str, attachment_type: AttachmentType, url: &str) -> Message {
    Message {
        mid: mid(n),
        sender_id: USER.into(),
        recipient_id: ACCOUNT.into(),
        attachments: vec![Attachment {
            attachment_type,
            url: Some(url.into()),
            title: None,
            media_id: None,
        }],
        ..Message::default()
    }
}

fn comment(id: &str, from: Option<(&str, &str)>, text: &str, media: (&str, &str)) -> Comment {
    Comment {
        id: id.into(),
        from_id: from.map(|(id, _)| id.into()),
        from_username: from.map(|(_, username)| username.into()),
        text: text.into(),
        parent_id: None,
        media: Some(Media {
            id: media.0.into(),
            product_type: Some(media.1.into()),
            ..Media::default()
        }),
    }
}

/// Normalise a fixture and blank the keys (checked on their own below).
fn events_of(body: &[u8]) -> Vec<Event> {
    normalise(body)
        .unwrap()
        .into_iter()
        .map(|event| Event {
            key: String::new(),
            ..event
        })
        .collect()
}

#[test]
fn every_webhook_fixture_produces_exactly_its_events() {
    let ms = |n: u64| 1763800000000 + n;
    let cases: Vec<(&str, Vec<Event>)> = vec![
        ("message_text.json", vec![event(ACCOUNT, ms(0), EventKind::Message(text_message("001", "Hello! Do you ship to Lisbon?")))]),
        ("message_unicode.json", vec![event(ACCOUNT, ms(1), EventKind::Message(text_message("002", "Olá — quanto custa? 😊 äöå")))]),
        ("message_quick_reply.json", vec![event(ACCOUNT, ms(2), EventKind::Message(Message {
            quick_reply_payload: Some("summer-sale-interest".into()),
            ..text_message("003", "I am interested!")
        }))]),
        ("message_image.json", vec![event(ACCOUNT, ms(3), EventKind::Message(with_attachment(
            "004", AttachmentType::Image, "https://lookaside.fbsbx.com/ig_messaging_cdn/?asset_id=1799&signature=abc",
        )))]),
        ("message_share.json", vec![event(ACCOUNT, ms(4), EventKind::Message(with_attachment(
            "005", AttachmentType::Share, "https://lookaside.fbsbx.com/ig_messaging_cdn/?asset_id=1800&signature=def",
        )))]),
        ("message_story_mention.json", vec![event(ACCOUNT, ms(5), EventKind::Message(with_attachment(
            "006", AttachmentType::StoryMention, "https://lookaside.fbsbx.com/ig_messaging_cdn/?asset_id=1801&signature=ghi",
        )))]),
        ("message_reply_to_story.json", vec![event(ACCOUNT, ms(6), EventKind::Message(Message {
            reply_to: Some(ReplyTo::Story {
                id: "3500000000000000001".into(),
                url: Some("https://lookaside.fbsbx.com/ig_messaging_cdn/?asset_id=1802&signature=jkl".into()),
            }),
            ..text_message("007", "Love this look")
        }))]),
        ("message_reply_to_message.json", vec![event(ACCOUNT, ms(7), EventKind::Message(Message {
            reply_to: Some(ReplyTo::Message(mid("001"))),
            ..text_message("008", "yes, that one")
        }))]),
        ("message_echo.json", vec![Event {
            is_echo: true,
            ..event(ACCOUNT, ms(8), EventKind::Message(Message {
                sender_id: ACCOUNT.into(),
                recipient_id: USER.into(),
                ..text_message("009", "Thanks for reaching out!")
            }))
        }]),
        ("message_deleted.json", vec![event(ACCOUNT, ms(9), EventKind::MessageDeleted(MessageDeleted {
            mid: mid("001"),
            sender_id: USER.into(),
        }))]),
        ("message_unsupported.json", vec![event(ACCOUNT, ms(10), EventKind::Message(Message {
            text: None,
            is_unsupported: true,
            ..text_message("010", "")
        }))]),
        ("self_echo.json", vec![Event {
            is_echo: true,
            is_self: true,
            ..event(ACCOUNT, ms(11), EventKind::Message(Message {
                sender_id: ACCOUNT.into(),
                recipient_id: "7000000000000001".into(),
                ..text_message("011", "Preview of my automation")
            }))
        }]),
        ("reaction_react.json", vec![event(ACCOUNT, ms(12), EventKind::Reaction(Reaction {
            mid: mid("009"),
            sender_id: USER.into(),
            action: ReactionAction::React,
            reaction: Some("love".into()),
            emoji: Some("❤".into()),
        }))]),
        ("reaction_unreact.json", vec![event(ACCOUNT, ms(13), EventKind::Reaction(Reaction {
            mid: mid("009"),
            sender_id: USER.into(),
            action: ReactionAction::Unreact,
            reaction: None,
            emoji: None,
        }))]),
        ("postback_icebreaker.json", vec![event(ACCOUNT, ms(14), EventKind::Postback(Postback {
            mid: Some(mid("012")),
            sender_id: USER.into(),
            title: "What are your opening hours?".into(),
            payload: "FAQ_HOURS".into(),
            referral: None,
        }))]),
        ("self_postback.json", vec![Event {
            is_self: true,
            ..event(ACCOUNT, ms(15), EventKind::Postback(Postback {
                mid: Some(mid("013")),
                sender_id: ACCOUNT.into(),
                title: "Start Chatting".into(),
                payload: "START".into(),
                referral: None,
            }))
        }]),
        ("seen.json", vec![event(ACCOUNT, ms(16), EventKind::Seen(Seen { sender_id: USER.into(), mid: mid("009") }))]),
        ("message_edit.json", vec![event(ACCOUNT, ms(17), EventKind::MessageEdit(MessageEdit {
            mid: mid("001"),
            sender_id: USER.into(),
            text: Some("Hello! Do you ship to Porto?".into()),
            num_edit: 1,
        }))]),
        ("referral_igme.json", vec![event(ACCOUNT, ms(18), EventKind::Referral(ReferralEvent {
            sender_id: USER.into(),
            referral: Referral {
                r#ref: Some("summer_campaign".into()),
                source: Some("IGME_SOURCE_LINK".into()),
                referral_type: Some("OPEN_THREAD".into()),
                ..Referral::default()
            },
        }))]),
        ("batch_mixed.json", vec![
            event(ACCOUNT, ms(19), EventKind::Message(text_message("020", "first"))),
            event(ACCOUNT, ms(20), EventKind::Message(text_message("021", "second"))),
            event("17841400000000002", ms(21), EventKind::Postback(Postback {
                mid: Some(mid("022")),
                sender_id: MARIA.into(),
                title: "Talk to an agent".into(),
                payload: "CARE_HELP".into(),
                referral: None,
            })),
            event(ACCOUNT, 1763800105000, EventKind::Comment(comment(
                "17900000000000007", Some((MARIA, "maria.sousa")), "PRICE", ("17950000000000001", "FEED"),
            ))),
        ]),
        ("comment_changes.json", vec![event(ACCOUNT, 1763800100000, EventKind::Comment(comment(
            "17900000000000001", Some((MARIA, "maria.sousa")), "PRICE please!", ("17950000000000001", "FEED"),
        )))]),
        ("comment_flat.json", vec![event(ACCOUNT, 1763800102000, EventKind::Comment(Comment {
            from_username: Some("joao.reels".into()),
            ..comment("17900000000000003", None, "link?", ("17950000000000002", "REELS"))
        }))]),
        ("comment_reply_in_thread.json", vec![event(ACCOUNT, 1763800101000, EventKind::Comment(Comment {
            parent_id: Some("17900000000000001".into()),
            ..comment("17900000000000002", Some((MARIA, "maria.sousa")), "also in blue?", ("17950000000000001", "FEED"))
        }))]),
        ("live_comment.json", vec![event(ACCOUNT, 1763800104000, EventKind::LiveComment(comment(
            "17900000000000005", Some((MARIA, "maria.sousa")), "hi from Porto", ("17960000000000001", "LIVE"),
        )))]),
        ("mention_comment.json", vec![event(ACCOUNT, 1520622968000, EventKind::Mention(Mention {
            media_id: "17960000000000002".into(),
            comment_id: Some("17900000000000006".into()),
        }))]),
        ("self_comment.json", vec![Event {
            is_echo: true,
            ..event(ACCOUNT, 1763800103000, EventKind::Comment(comment(
                "17900000000000004", Some((ACCOUNT, "acme.store")), "Thanks! Check your DMs", ("17950000000000001", "FEED"),
            )))
        }]),
    ];

    let fixture_dir = format!("{}/../tests/fixtures/webhooks", env!("CARGO_MANIFEST_DIR"));
    let on_disk = std::fs::read_dir(&fixture_dir).unwrap().count();
    assert_eq!(
        cases.len(),
        on_disk,
        "every fixture in {fixture_dir} has a case"
    );
    for (name, expected) in cases {
        let actual = events_of(&shared(&format!("webhooks/{name}")));
        assert_eq!(actual, expected, "{name}");
    }
}

#[test]
fn keys_are_stable_and_tell_kinds_apart() {
    let key = |name: &str| {
        normalise(&shared(&format!("webhooks/{name}"))).unwrap()[0]
            .key
            .clone()
    };
    assert_eq!(
        key("message_text.json"),
        format!("message:{ACCOUNT}:{}", mid("001"))
    );
    assert_eq!(
        key("message_deleted.json"),
        format!("message-deleted:{ACCOUNT}:{}", mid("001"))
    );
    assert_eq!(
        key("message_edit.json"),
        format!("message-edit:{ACCOUNT}:{}:1", mid("001"))
    );
    assert_eq!(
        key("comment_changes.json"),
        format!("comment:{ACCOUNT}:17900000000000001")
    );
    assert_eq!(
        key("mention_comment.json"),
        format!("mention:{ACCOUNT}:17960000000000002:17900000000000006")
    );
    assert_eq!(
        key("message_text.json"),
        key("message_text.json"),
        "same body, same key"
    );
    assert_ne!(key("reaction_react.json"), key("reaction_unreact.json"));
}

#[test]
fn standby_items_are_events_flagged_standby() {
    let body = br#"{"object":"instagram","entry":[{"id":"1","time":1,"standby":[
        {"sender":{"id":"2"},"recipient":{"id":"1"},"timestamp":1763800000000,"message":{"mid":"m","text":"hi"}},
        {"sender":{"id":"2"},"recipient":{"id":"1"},"timestamp":1763800000001,
         "pass_thread_control":{"previous_owner_app_id":"10","new_owner_app_id":"20","metadata":"to bot"}}]}]}"#;
    let events = normalise(body).unwrap();
    assert_eq!(events.len(), 2);
    assert!(events.iter().all(|event| event.is_standby));
    assert_eq!(
        events[1].kind,
        EventKind::Handover(crate::events::Handover {
            sender_id: "2".into(),
            action: crate::events::HandoverAction::Pass,
            previous_owner_app_id: Some("10".into()),
            new_owner_app_id: Some("20".into()),
            metadata: Some("to bot".into()),
        })
    );
}

#[test]
fn optins_ads_referrals_and_unknown_items_are_kept() {
    let body = br#"{"object":"instagram","entry":[{"id":"1","messaging":[
        {"sender":{"id":"2"},"recipient":{"id":"1"},"timestamp":1763800000000,
         "optin":{"type":"notification_messages","payload":"P","notification_messages_token":"T"}},
        {"sender":{"id":"2"},"recipient":{"id":"1"},"timestamp":1763800000001,"message":{"mid":"m","text":"hi",
         "referral":{"ref":"r","ad_id":6000000000000,"source":"ADS","type":"OPEN_THREAD",
                     "ads_context_data":{"ad_title":"Sale","photo_url":"https://p"}}}},
        {"sender":{"id":"2"},"recipient":{"id":"1"},"timestamp":1763800000002,"message_poll":{"q":1}}],
        "changes":[{"field":"story_mentions_v2","value":{"x":[1,2]}}]}]}"#;
    let events = normalise(body).unwrap();
    assert_eq!(events.len(), 4);
    let EventKind::Optin(optin) = &events[0].kind else {
        panic!("{:?}", events[0])
    };
    assert_eq!(
        (optin.optin_type.as_deref(), optin.token.as_deref()),
        (Some("notification_messages"), Some("T"))
    );
    let EventKind::Message(message) = &events[1].kind else {
        panic!("{:?}", events[1])
    };
    let referral = message.referral.as_ref().unwrap();
    assert_eq!(referral.ad_id.as_deref(), Some("6000000000000"));
    assert_eq!(referral.ad_title.as_deref(), Some("Sale"));
    let EventKind::Unknown(unknown) = &events[2].kind else {
        panic!("{:?}", events[2])
    };
    assert!(
        unknown.raw_json.contains(r#""message_poll":{"q":1}"#),
        "{}",
        unknown.raw_json
    );
    let EventKind::Unknown(unknown) = &events[3].kind else {
        panic!("{:?}", events[3])
    };
    assert_eq!(
        (unknown.field.as_str(), unknown.raw_json.as_str()),
        ("story_mentions_v2", r#"{"x":[1,2]}"#)
    );
}

/// `tests/fixtures/real-world/INDEX.md`, row by row.
#[test]
fn real_world_bodies_produce_the_events_their_index_lists() {
    let events = |name: &str| normalise(&shared(&format!("real-world/{name}.json"))).unwrap();
    let message = |event: &Event| match &event.kind {
        EventKind::Message(message) => message.clone(),
        other => panic!("expected a message, got {other:?}"),
    };

    let text = events("courier__text_message");
    assert_eq!(text.len(), 1);
    assert_eq!(
        (text[0].account_id.as_str(), text[0].timestamp_ms),
        ("1234567890", 1459991487970)
    );
    let m = message(&text[0]);
    assert_eq!(
        (m.sender_id.as_str(), m.mid.as_str(), m.text.as_deref()),
        ("5678", "external_id", Some("Hello World"))
    );

    let image = message(&events("courier__image_attachment")[0]);
    assert_eq!(image.attachments[0].attachment_type, AttachmentType::Image);
    assert_eq!(
        image.attachments[0].url.as_deref(),
        Some("https://image-url/foo.png")
    );

    let heart = message(&events("courier__like_heart_sticker")[0]);
    assert_eq!(
        heart.attachments[0].attachment_type,
        AttachmentType::LikeHeart
    );
    assert_eq!(heart.attachments[0].url, None);

    let icebreaker = &events("courier__icebreaker_postback_no_mid")[0];
    let EventKind::Postback(postback) = &icebreaker.kind else {
        panic!()
    };
    assert_eq!(
        (
            postback.mid.as_ref(),
            postback.title.as_str(),
            postback.payload.as_str()
        ),
        (None, "icebreaker question", "get_started")
    );

    let story = message(&events("courier__story_mention")[0]);
    assert_eq!(
        story.attachments[0].attachment_type,
        AttachmentType::StoryMention
    );
    assert_eq!(
        story.attachments[0].url.as_deref(),
        Some("https://story-url")
    );

    let unsent = &events("courier__is_deleted_unsend")[0];
    assert_eq!(
        unsent.timestamp_ms, 1569262485349,
        "the item's timestamp wins over entry.time"
    );
    assert_eq!(
        unsent.kind,
        EventKind::MessageDeleted(MessageDeleted {
            mid: "external_id".into(),
            sender_id: "5678".into()
        })
    );

    let echo = &events("courier__echo_without_text")[0];
    assert!(echo.is_echo);
    assert_eq!(message(echo).mid, "qT7ywaK");

    let duplicated = events("courier__duplicate_entries_batched");
    assert_eq!(duplicated.len(), 2);
    assert_eq!(duplicated[0].key, duplicated[1].key, "the inbox keeps one");

    assert!(events("courier__unknown_messaging_event").is_empty());
    assert!(events("courier__entry_without_messaging").is_empty());

    let other_page = &events("courier__recipient_not_entry_account")[0];
    assert_eq!(other_page.account_id, "1234567890", "routed by entry.id");
    assert_eq!(message(other_page).recipient_id, "1235");

    let ad = &events("weni-courier__comment_on_ad_original_media_id")[0];
    let EventKind::Comment(ad_comment) = &ad.kind else {
        panic!()
    };
    let media = ad_comment.media.as_ref().unwrap();
    assert_eq!(
        (
            ad.account_id.as_str(),
            ad_comment.id.as_str(),
            ad_comment.text.as_str()
        ),
        ("12345", "30065218", "Hello World")
    );
    assert_eq!(
        (
            media.id.as_str(),
            media.ad_id.as_deref(),
            media.original_media_id.as_deref(),
            media.product_type.as_deref()
        ),
        (
            "180615383",
            Some("1280670063"),
            Some("179908467"),
            Some("AD")
        )
    );

    let story_reply = message(&events("weni-courier__story_reply_escaped_slashes")[0]);
    assert_eq!(
        story_reply.reply_to,
        Some(ReplyTo::Story {
            id: "story-id-123".into(),
            url: Some("https://lookaside.fbsbx.com/ig_messaging_cdn/?asset_id=story123".into()),
        })
    );

    let unsupported = message(&events("restfb__unsupported_type_attachment_real")[0]);
    assert_eq!(
        unsupported.attachments[0].attachment_type,
        AttachmentType::Other("unsupported_type".into())
    );

    let seen = &events("restfb__messaging_seen_read")[0];
    assert!(
        matches!(&seen.kind, EventKind::Seen(Seen { sender_id, .. }) if sender_id == "5614879045272581")
    );

    let reply = &events("restfb__comment_reply_parent_id")[0];
    let EventKind::Comment(reply_comment) = &reply.kind else {
        panic!()
    };
    assert_eq!(
        (
            reply_comment.id.as_str(),
            reply_comment.parent_id.as_deref()
        ),
        ("123456789", Some("987654321"))
    );
    assert_eq!(reply.account_id, "0");

    let live = &events("restfb__live_comments")[0];
    assert!(
        matches!(&live.kind, EventKind::LiveComment(c) if c.from_id.is_none() && c.text == "This is an example.")
    );

    let mention = &events("restfb__mention_in_comment")[0];
    assert_eq!(
        mention.kind,
        EventKind::Mention(Mention {
            media_id: "17887498072083520".into(),
            comment_id: Some("17887498072083520".into()),
        })
    );

    let insights = &events("restfb__story_insights")[0];
    assert_eq!(
        insights.kind,
        EventKind::StoryInsights(StoryInsights {
            media_id: "17887498072083520".into(),
            exits: Some(3),
            replies: Some(0),
            reach: Some(44),
            taps_forward: Some(4),
            taps_back: Some(3),
            impressions: Some(444),
        })
    );

    let three = events("go-meta-webhooks__three_messages_one_entry");
    let senders: Vec<_> = three.iter().map(|event| message(event).sender_id).collect();
    assert_eq!(senders, ["567", "444", "666"]);

    let quick = message(&events("go-meta-webhooks__quick_reply_without_text")[0]);
    assert_eq!(
        (quick.text, quick.quick_reply_payload.as_deref()),
        (None, Some("SIZE_M"))
    );

    let referral = &events("go-meta-webhooks__messaging_referral_open_thread")[0];
    let EventKind::Referral(referral) = &referral.kind else {
        panic!()
    };
    assert_eq!(
        referral.referral.source.as_deref(),
        Some("IGME-SOURCE-LINK")
    );

    let postback = &events("go-meta-webhooks__postback_with_mid")[0];
    assert!(
        matches!(&postback.kind, EventKind::Postback(p) if p.mid.is_some() && p.payload == "ICEBREAKER_OPENING_HOURS")
    );

    let reel = message(&events("go-meta-webhooks__reel_attachment_type_reel")[0]);
    assert_eq!(
        (
            reel.attachments[0].attachment_type.clone(),
            reel.attachments[0].media_id.as_deref(),
            reel.attachments[0].title.as_deref()
        ),
        (AttachmentType::Reel, Some("123"), Some("reel title"))
    );

    let caption = &events("go-meta-webhooks__caption_mention")[0];
    assert_eq!(
        caption.kind,
        EventKind::Mention(Mention {
            media_id: "999".into(),
            comment_id: None
        })
    );

    let two = events("go-meta-webhooks__mention_and_story_insights_same_entry");
    assert_eq!(
        two.iter().map(|e| e.kind_name()).collect::<Vec<_>>(),
        ["mention", "story-insights"]
    );

    let mentions = events("go-meta-webhooks__three_entries_comment_mentions");
    assert_eq!(mentions.len(), 3);
    assert!(
        mentions.iter().all(|event| event.key == mentions[0].key),
        "identical: the inbox keeps one"
    );

    let manysync = message(&events("manysync__ig_reel_unicode_escaped_title_real")[0]);
    assert_eq!(
        manysync.attachments[0].attachment_type,
        AttachmentType::IgReel
    );
    assert_eq!(
        manysync.attachments[0].media_id.as_deref(),
        Some("18087782618022081")
    );
    let title = manysync.attachments[0].title.as_deref().unwrap();
    assert!(
        title.starts_with("“വഴി തടഞ്ഞാൽ…") && title.contains("🚧➡️💥\n\nNO TOLL ❌✊🏻"),
        "{title}"
    );

    let compact = message(&events("social-selling__text_real_compact")[0]);
    assert_eq!(
        (compact.sender_id.as_str(), compact.text.as_deref()),
        ("1129842642640637", Some("Oi"))
    );

    let echo = &events("social-selling__echo_sender_is_account")[0];
    assert!(echo.is_echo);
    assert_eq!(echo.counterpart_id(), Some("2149642518895477"));

    let test_postback = &events("social-selling__dashboard_test_postback_is_self")[0];
    assert!(test_postback.is_self);
    assert!(
        matches!(&test_postback.kind, EventKind::Postback(p) if p.title == "Talk to human" && p.sender_id == "2494432963985342")
    );

    let test_seen = &events("social-selling__dashboard_test_messaging_seen")[0];
    assert_eq!(test_seen.timestamp_ms, 1527459824000, "string seconds");
    assert_eq!(
        test_seen.kind,
        EventKind::Seen(Seen {
            sender_id: "12334".into(),
            mid: "last_message_id_read".into()
        })
    );
}

/// A fixture of `tests/fixtures/real-world/` by name.
fn real_world(name: &str) -> Vec<u8> {
    shared(&format!("real-world/{name}.json"))
}

/// The keys of a body's events, in order.
fn keys_of(body: &[u8]) -> Vec<String> {
    normalise(body)
        .unwrap()
        .into_iter()
        .map(|event| event.key)
        .collect()
}

/// Whether `key` is `{prefix}` followed by a 32-digit hex digest.
fn is_digest_key(key: &str, prefix: &str) -> bool {
    key.strip_prefix(prefix)
        .is_some_and(|digest| digest.len() == 32 && digest.bytes().all(|b| b.is_ascii_hexdigit()))
}

#[test]
fn attachments_keep_their_media_under_type_specific_and_nested_keys() {
    let cdn = |asset: &str, signature: &str| {
        Some(format!(
            "https://lookaside.fbsbx.com/ig_messaging_cdn/?asset_id={asset}&signature={signature}"
        ))
    };
    let media =
        |attachment_type, url: Option<String>, title: Option<&str>, media_id: Option<&str>| {
            Attachment {
                attachment_type,
                url,
                title: title.map(Into::into),
                media_id: media_id.map(Into::into),
            }
        };
    let other = |name: &str| AttachmentType::Other(name.into());
    let expected = vec![event(
        ACCOUNT,
        1763900000000,
        EventKind::Message(Message {
            mid: mid("101"),
            sender_id: USER.into(),
            recipient_id: ACCOUNT.into(),
            attachments: vec![
                // `story_media_id` / `story_media_url`.
                media(
                    other("ig_story"),
                    cdn("3712000000000000101", "s1"),
                    None,
                    Some("3712000000000000101"),
                ),
                // `media_id` as a JSON integer / `media_url`.
                media(
                    other("story"),
                    cdn("3712000000000000102", "s2"),
                    None,
                    Some("3712000000000000102"),
                ),
                // One level down: `payload.story.{id,url}`.
                media(
                    other("story"),
                    cdn("3712000000000000103", "s3"),
                    None,
                    Some("3712000000000000103"),
                ),
                // One level down, an integer above u64 kept digit for digit, `video_url`.
                media(
                    AttachmentType::Video,
                    cdn("3712000000000000104", "s4"),
                    None,
                    Some("371200000000000010412345"),
                ),
                // `url` and `id`.
                media(
                    AttachmentType::StoryMention,
                    cdn("3712000000000000105", "s5"),
                    None,
                    Some("3712000000000000105"),
                ),
                // A sticker's id is not the media's.
                media(
                    AttachmentType::Image,
                    cdn("1799000000000000106", "s6"),
                    None,
                    None,
                ),
                media(
                    AttachmentType::IgPost,
                    cdn("18000000000000000107", "s7"),
                    Some("New collection drop"),
                    Some("18000000000000000107"),
                ),
                media(
                    other("fallback"),
                    Some("https://example.com/lookbook".into()),
                    Some("Autumn lookbook"),
                    None,
                ),
                // Messenger's old fallback: `url` and `title` beside a null payload.
                media(
                    other("fallback"),
                    Some("https://example.com/spring".into()),
                    Some("Spring lookbook"),
                    None,
                ),
                // `image_url` and `attachment_id`.
                media(
                    AttachmentType::Image,
                    cdn("1799000000000000110", "s10"),
                    None,
                    Some("1799000000000000110"),
                ),
                // A payload that is not an object: no media, and the message is kept.
                media(AttachmentType::File, None, None, None),
            ],
            ..Message::default()
        }),
    )];
    assert_eq!(
        events_of(&real_world("igloo__story_attachment_media_keys")),
        expected
    );
}

#[test]
fn a_referral_beside_a_message_lands_on_the_message() {
    let expected = vec![
        event(
            ACCOUNT,
            1763900001000,
            EventKind::Message(Message {
                referral: Some(Referral {
                    r#ref: Some("blue_jacket_ad".into()),
                    source: Some("ADS".into()),
                    referral_type: Some("OPEN_THREAD".into()),
                    ad_id: Some("120210000000000001".into()),
                    ad_title: Some("Blue jacket, 30% off".into()),
                    ad_photo_url: Some(
                        "https://scontent.xx.fbcdn.net/v/t45.1600-4/ad_photo.jpg".into(),
                    ),
                    ad_video_url: Some(
                        "https://video.xx.fbcdn.net/v/t42.1790-2/ad_video.mp4".into(),
                    ),
                }),
                ..text_message("201", "Is the blue one still available?")
            }),
        ),
        // The message's own referral wins over one beside it.
        event(
            ACCOUNT,
            1763900001001,
            EventKind::Message(Message {
                sender_id: MARIA.into(),
                referral: Some(Referral {
                    r#ref: Some("inside_message".into()),
                    source: Some("IGME_SOURCE_LINK".into()),
                    referral_type: Some("OPEN_THREAD".into()),
                    ..Referral::default()
                }),
                ..text_message("202", "hi from the link")
            }),
        ),
    ];
    let body = real_world("igloo__message_with_referral_beside");
    assert_eq!(events_of(&body), expected);
    assert_eq!(
        keys_of(&body),
        [
            format!("message:{ACCOUNT}:{}", mid("201")),
            format!("message:{ACCOUNT}:{}", mid("202"))
        ],
        "the referral changes no key"
    );
}

#[test]
fn a_postbacks_referral_is_kept() {
    let expected = vec![
        // Inside `postback`, as ig.me links send it.
        event(
            ACCOUNT,
            1763900002000,
            EventKind::Postback(Postback {
                mid: Some(mid("301")),
                sender_id: USER.into(),
                title: "Get Started".into(),
                payload: "GET_STARTED".into(),
                referral: Some(Referral {
                    r#ref: Some("winter_campaign".into()),
                    source: Some("IGME_SOURCE_LINK".into()),
                    referral_type: Some("OPEN_THREAD".into()),
                    ..Referral::default()
                }),
            }),
        ),
        // Beside `postback`, at item level.
        event(
            ACCOUNT,
            1763900002001,
            EventKind::Postback(Postback {
                mid: None,
                sender_id: MARIA.into(),
                title: "Shop now".into(),
                payload: "SHOP_NOW".into(),
                referral: Some(Referral {
                    r#ref: Some("shop_ad".into()),
                    source: Some("ADS".into()),
                    referral_type: Some("OPEN_THREAD".into()),
                    ad_id: Some("120210000000000002".into()),
                    ad_title: Some("Winter sale".into()),
                    ..Referral::default()
                }),
            }),
        ),
    ];
    assert_eq!(
        events_of(&real_world("igloo__postback_with_referral")),
        expected
    );
}

#[test]
fn story_insights_are_keyed_by_their_values_not_by_entry_time() {
    let body = real_world("igloo__story_insights_retry");
    let insights = |exits, replies, reach, taps_forward, impressions| {
        EventKind::StoryInsights(StoryInsights {
            media_id: "17887498072083521".into(),
            exits: Some(exits),
            replies: Some(replies),
            reach: Some(reach),
            taps_forward: Some(taps_forward),
            taps_back: Some(3),
            impressions: Some(impressions),
        })
    };
    assert_eq!(
        events_of(&body),
        vec![
            event(ACCOUNT, 1763900003000, insights(3, 0, 44, 4, 444)),
            event(ACCOUNT, 1763900903000, insights(3, 0, 44, 4, 444)),
            event(ACCOUNT, 1763903603000, insights(5, 1, 61, 7, 610)),
        ]
    );

    let keys = keys_of(&body);
    let prefix = format!("story-insights:{ACCOUNT}:17887498072083521:");
    assert!(
        keys.iter().all(|key| is_digest_key(key, &prefix)),
        "{keys:?}"
    );
    assert_eq!(
        keys[0], keys[1],
        "a retry with a new entry.time is the same event"
    );
    assert_ne!(keys[0], keys[2], "new metric values are a new event");

    // The same across deliveries: only entry.time differs.
    let retried = String::from_utf8(body.clone())
        .unwrap()
        .replace("\"time\": 1763900003,", "\"time\": 1763999999,");
    assert_ne!(retried.as_bytes(), body.as_slice());
    assert_eq!(keys_of(retried.as_bytes()), keys);
}

#[test]
fn items_without_ids_get_keys_of_their_own_that_retries_share() {
    let body = real_world("igloo__messages_without_mid");
    let without_mid = |text: &str| Message {
        mid: String::new(),
        ..text_message("000", text)
    };
    let seen = EventKind::Seen(Seen {
        sender_id: USER.into(),
        mid: String::new(),
    });
    assert_eq!(
        events_of(&body),
        vec![
            event(
                ACCOUNT,
                1763900004000,
                EventKind::Message(without_mid("first, without a mid"))
            ),
            event(
                ACCOUNT,
                1763900004001,
                EventKind::Message(without_mid("second, with an empty mid"))
            ),
            event(ACCOUNT, 1763900004002, seen.clone()),
            event(ACCOUNT, 1763900004003, seen),
            event(
                ACCOUNT,
                1763900004000,
                EventKind::Message(without_mid("first, without a mid"))
            ),
        ]
    );

    let keys = keys_of(&body);
    assert!(
        is_digest_key(&keys[0], &format!("message:{ACCOUNT}:")),
        "{}",
        keys[0]
    );
    assert!(
        is_digest_key(&keys[2], &format!("seen:{ACCOUNT}:")),
        "{}",
        keys[2]
    );
    assert_ne!(keys[0], keys[1], "two messages without mid are two events");
    assert_ne!(keys[2], keys[3], "two reads without mid are two events");
    assert_eq!(
        keys[0], keys[4],
        "the same item delivered twice is one event"
    );
    assert_eq!(keys_of(&body), keys, "stable across runs");

    // A redelivery laid out differently (keys reordered, no whitespace)
    // still dedupes.
    let compact = serde_json::from_slice::<serde_json::Value>(&body)
        .unwrap()
        .to_string();
    assert_eq!(keys_of(compact.as_bytes()), keys);
}

#[test]
fn every_id_a_key_is_built_from_falls_back_to_the_items_digest() {
    let body = br#"{"object":"instagram","entry":[{"id":"1","messaging":[
        {"sender":{"id":"2"},"recipient":{"id":"1"},"timestamp":1763800000000,"message":{"is_deleted":true}},
        {"sender":{"id":"2"},"recipient":{"id":"1"},"timestamp":1763800000001,"message":{"mid":"","is_deleted":true}},
        {"sender":{"id":"2"},"recipient":{"id":"1"},"timestamp":1763800000002,"message_edit":{"text":"a","num_edit":1}},
        {"sender":{"id":"2"},"recipient":{"id":"1"},"timestamp":1763800000003,"message_edit":{"text":"b","num_edit":1}},
        {"sender":{"id":"2"},"recipient":{"id":"1"},"timestamp":1763800000004,"reaction":{"action":"react","emoji":"x"}},
        {"sender":{"id":"2"},"recipient":{"id":"1"},"timestamp":1763800000005,"reaction":{"action":"react","emoji":"x"}},
        {"sender":{"id":"2"},"recipient":{"id":"1"},"timestamp":1763800000006,"postback":{"mid":"","payload":"P"}},
        {"sender":{"id":"2"},"recipient":{"id":"1"},"timestamp":1763800000007,"postback":{"payload":"P"}}]},
        {"id":"1","changes":[{"field":"comments","value":{"text":"no id"}},{"field":"comments","value":{"text":"no id either"}}]}]}"#;
    let keys = keys_of(body);
    let kinds = [
        "message-deleted",
        "message-deleted",
        "message-edit",
        "message-edit",
        "reaction",
        "reaction",
        "postback",
        "postback",
        "comment",
        "comment",
    ];
    assert_eq!(keys.len(), kinds.len());
    for (key, kind) in keys.iter().zip(kinds) {
        assert!(is_digest_key(key, &format!("{kind}:1:")), "{key}");
    }
    for pair in keys.chunks(2) {
        assert_ne!(pair[0], pair[1], "different items, different keys");
    }
    assert_eq!(keys_of(body), keys, "the same items, the same keys");
}

mod never_panics {
    use proptest::prelude::*;

    use super::*;

    fn fixtures() -> Vec<Vec<u8>> {
        ["webhooks", "real-world"]
            .iter()
            .flat_map(|folder| {
                let dir = format!("{}/../tests/fixtures/{folder}", env!("CARGO_MANIFEST_DIR"));
                std::fs::read_dir(dir)
                    .unwrap()
                    .map(|entry| entry.unwrap().path())
            })
            .filter(|path| path.extension().is_some_and(|ext| ext == "json"))
            .map(|path| std::fs::read(path).unwrap())
            .collect()
    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: 2000, ..ProptestConfig::default() })]

        #[test]
        fn on_arbitrary_bytes(body in proptest::collection::vec(any::<u8>(), 0..512)) {
            let _ = normalise(&body);
        }

        #[test]
        fn on_mutated_fixtures(
            pick in any::<prop::sample::Index>(),
            edits in proptest::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 1..8),
            cut in any::<prop::sample::Index>(),
        ) {
            let fixtures = fixtures();
            let mut body = fixtures[pick.index(fixtures.len())].clone();
            for (at, byte) in edits {
                let at = at.index(body.len());
                body[at] = byte;
            }
            let _ = normalise(&body);
            body.truncate(cut.index(body.len() + 1));
            let _ = normalise(&body);
        }

        #[test]
        fn on_structurally_odd_json(value in arbitrary_json()) {
            let body = serde_json::json!({"object": "instagram", "entry": [value]}).to_string();
            let _ = normalise(body.as_bytes());
        }
    }

    /// JSON trees that use the webhook's own keys, so the parser's deeper
    /// paths are reached with the wrong types in them.
    fn arbitrary_json() -> impl Strategy<Value = serde_json::Value> {
        let keys = prop::sample::select(vec![
            "id",
            "time",
            "messaging",
            "changes",
            "standby",
            "field",
            "value",
            "sender",
            "recipient",
            "timestamp",
            "message",
            "mid",
            "text",
            "attachments",
            "payload",
            "type",
            "reaction",
            "postback",
            "read",
            "referral",
            "from",
            "media",
            "is_echo",
            "reply_to",
            "story",
        ]);
        let leaf = prop_oneof![
            Just(serde_json::Value::Null),
            any::<bool>().prop_map(serde_json::Value::from),
            any::<i64>().prop_map(serde_json::Value::from),
            any::<f64>().prop_map(|n| serde_json::json!(n)),
            ".{0,8}".prop_map(serde_json::Value::from),
        ];
        leaf.prop_recursive(5, 64, 6, move |inner| {
            prop_oneof![
                prop::collection::vec(inner.clone(), 0..4).prop_map(serde_json::Value::from),
                prop::collection::btree_map(keys.clone(), inner, 0..6).prop_map(|map| {
                    serde_json::Value::Object(
                        map.into_iter().map(|(k, v)| (k.to_owned(), v)).collect(),
                    )
                }),
            ]
        })
    }
}

#[test]
fn bodies_of_other_meta_products_are_not_instagram_events() {
    let instagram = shared("webhooks/message_text.json");
    assert_eq!(
        normalise(&instagram).unwrap().len(),
        1,
        "the fixture is one message"
    );
    let text = String::from_utf8(instagram).unwrap();
    for object in ["page", "whatsapp_business_account", "Instagram", ""] {
        let other = text.replacen(
            "\"object\": \"instagram\"",
            &format!("\"object\": \"{object}\""),
            1,
        );
        assert_ne!(other, text, "the fixture names its object");
        assert_eq!(
            normalise(other.as_bytes()).unwrap(),
            Vec::<Event>::new(),
            "object {object:?}"
        );
    }
}
