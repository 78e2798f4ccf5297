//! The tray icon: tray-icon on the platform's event loop, run by tao on the
//! main thread (GTK on Linux, with libayatana-appindicator or, where no
//! StatusNotifier host runs, an XEmbed icon; Cocoa on macOS; Win32 on
//! Windows). The tokio runtime beside it polls the daemon over the control
//! socket; the menu sends requests back the same way.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use anyhow::Context;
use tao::event::{Event, StartCause};
use tao::event_loop::{ControlFlow, EventLoopBuilder};
use tao::platform::run_return::EventLoopExtRunReturn;
use tray_icon::menu::{Menu, MenuEvent, MenuItem, PredefinedMenuItem, Submenu};
use tray_icon::{Icon, TrayIcon, TrayIconBuilder};

use super::model::{self, Entry, MenuAction};
use crate::control::{Request, client};
use crate::status::{State, Status};

/// How often the daemon's status is read.
const POLL: Duration = Duration::from_secs(1);

fn decode(png_bytes: &[u8]) -> anyhow::Result<Icon> {
    let mut reader = png::Decoder::new(std::io::Cursor::new(png_bytes)).read_info()?;
    let mut buf = vec![0; reader.output_buffer_size().context("icon too large")?];
    let info = reader.next_frame(&mut buf)?;
    buf.truncate(info.buffer_size());
    anyhow::ensure!(info.color_type == png::ColorType::Rgba, "tray icons are RGBA PNGs");
    Ok(Icon::from_rgba(buf, info.width, info.height)?)
}

/// The three icons, from assets/.
struct Icons {
    connected: Icon,
    degraded: Icon,
    stopped: Icon,
}

impl Icons {
    fn load() -> anyhow::Result<Self> {
        Ok(Icons {
            connected: decode(include_bytes!("../../assets/tray-connected.png"))?,
            degraded: decode(include_bytes!("../../assets/tray-degraded.png"))?,
            stopped: decode(include_bytes!("../../assets/tray-stopped.png"))?,
        })
    }

    fn for_state(&self, state: State) -> Icon {
        match state {
            State::Connected => self.connected.clone(),
            State::Stopped => self.stopped.clone(),
            _ => self.degraded.clone(),
        }
    }
}

/// Builds the menu; returns it and what each item id does.
fn build(entries: &[Entry]) -> anyhow::Result<(Menu, HashMap<String, MenuAction>)> {
    let menu = Menu::new();
    let mut actions = HashMap::new();
    for e in entries {
        match e {
            Entry::Separator => menu.append(&PredefinedMenuItem::separator())?,
            Entry::Item { label, action } => menu.append(&item(label, action, &mut actions))?,
            Entry::Submenu { label, entries } => {
                let sub = Submenu::new(label, true);
                for e in entries {
                    if let Entry::Item { label, action } = e {
                        sub.append(&item(label, action, &mut actions))?;
                    }
                }
                menu.append(&sub)?;
            }
        }
    }
    Ok((menu, actions))
}

fn item(label: &str, action: &Option<MenuAction>, actions: &mut HashMap<String, MenuAction>) -> MenuItem {
    let id = format!("devingress-{}", actions.len());
    if let Some(a) = action {
        actions.insert(id.clone(), a.clone());
    }
    MenuItem::with_id(id, label, action.is_some(), None)
}

/// Does what a menu item says.
fn perform(action: &MenuAction, socket: &std::path::Path, rt: &tokio::runtime::Handle) {
    let send = |request: Request| {
        let socket = socket.to_path_buf();
        rt.spawn(async move {
            match client::send(&socket, &request).await {
                Ok(reply) => tracing::info!("tray: {}", reply.message),
                Err(e) => tracing::warn!("tray: {e}"),
            }
        });
    };
    match action {
        MenuAction::Open(url) => {
            if let Err(e) = super::open_url(url) {
                tracing::warn!("tray: cannot open {url}: {e}");
            }
        }
        MenuAction::TrustCa => {
            let exe = std::env::current_exe();
            std::thread::spawn(move || match exe.map(|e| std::process::Command::new(e).arg("trust").output()) {
                Ok(Ok(out)) if out.status.success() => {
                    tracing::info!("tray: devingress trust: {}", String::from_utf8_lossy(&out.stdout).trim())
                }
                Ok(Ok(out)) => tracing::warn!(
                    "tray: devingress trust did not finish: {} {}",
                    String::from_utf8_lossy(&out.stdout).trim(),
                    String::from_utf8_lossy(&out.stderr).trim()
                ),
                Ok(Err(e)) | Err(e) => tracing::warn!("tray: cannot run devingress trust: {e}"),
            });
        }
        MenuAction::UseContext(c) => send(Request::SwitchContext { context: c.clone() }),
        MenuAction::Pause => send(Request::Pause),
        MenuAction::Resume => send(Request::Resume),
        MenuAction::Quit => send(Request::Down),
    }
}

/// What wakes the event loop.
enum Wake {
    /// A new status (`None`: no daemon answers).
    Status(Option<Box<Status>>),
    /// A menu item was clicked.
    Menu(MenuEvent),
    /// The daemon stopped: leave the loop.
    Quit,
}

/// What the loop keeps between events.
struct Shown {
    tray: TrayIcon,
    entries: Vec<Entry>,
    state: State,
    actions: HashMap<String, MenuAction>,
}

impl Shown {
    fn create(icons: &Icons) -> anyhow::Result<Self> {
        let entries = model::menu(None);
        let (menu, actions) = build(&entries)?;
        let tray = TrayIconBuilder::new()
            .with_id("devingress")
            .with_icon(icons.stopped.clone())
            .with_tooltip(model::tooltip(None))
            .with_title("devingress")
            .with_menu(Box::new(menu))
            .build()
            .context("cannot create the tray icon")?;
        tracing::info!("showing the tray icon");
        Ok(Shown { tray, entries, state: State::Stopped, actions })
    }

    fn show(&mut self, status: Option<&Status>, icons: &Icons) {
        let state = model::icon_state(status);
        if state != self.state {
            tracing::debug!("tray: {} → {}", self.state.word(), state.word());
            let _ = self.tray.set_icon(Some(icons.for_state(state)));
            self.state = state;
        }
        let _ = self.tray.set_tooltip(Some(model::tooltip(status)));
        let entries = model::menu(status);
        if entries != self.entries {
            match build(&entries) {
                Ok((menu, actions)) => {
                    self.tray.set_menu(Some(Box::new(menu)));
                    self.actions = actions;
                    self.entries = entries;
                }
                Err(e) => tracing::warn!("tray: cannot build the menu: {e}"),
            }
        }
    }
}

/// Shows the tray icon until `done` is set (the daemon stopped). Runs the
/// platform's event loop on this thread, which must be the main thread; the
/// poller on the tokio runtime and menu clicks wake it with events.
pub fn run(socket: PathBuf, done: Arc<AtomicBool>, rt: tokio::runtime::Handle) -> anyhow::Result<()> {
    let icons = Icons::load()?;
    // tao panics when the platform's toolkit cannot start (a display that does not answer).
    let built = std::panic::catch_unwind(|| EventLoopBuilder::<Wake>::with_user_event().build());
    let mut event_loop = built.map_err(|_| anyhow::anyhow!("cannot start the platform's event loop"))?;
    let proxy = event_loop.create_proxy();
    {
        let proxy = proxy.clone();
        MenuEvent::set_event_handler(Some(move |e| {
            let _ = proxy.send_event(Wake::Menu(e));
        }));
    }
    {
        let socket = socket.clone();
        rt.spawn(async move {
            loop {
                if done.load(Ordering::Relaxed) {
                    let _ = proxy.send_event(Wake::Quit);
                    return;
                }
                let status = client::status(&socket).await.ok().map(Box::new);
                if proxy.send_event(Wake::Status(status)).is_err() {
                    return;
                }
                tokio::time::sleep(POLL).await;
            }
        });
    }
    let mut shown: Option<Shown> = None;
    let mut failed = None;
    event_loop.run_return(|event, _, control_flow| {
        *control_flow = ControlFlow::Wait;
        match event {
            // macOS wants the icon made once the loop runs.
            Event::NewEvents(StartCause::Init) => match Shown::create(&icons) {
                Ok(s) => shown = Some(s),
                Err(e) => {
                    failed = Some(e);
                    *control_flow = ControlFlow::Exit;
                }
            },
            Event::UserEvent(Wake::Status(status)) => {
                if let Some(s) = shown.as_mut() {
                    s.show(status.as_deref(), &icons);
                }
            }
            Event::UserEvent(Wake::Menu(click)) => {
                if let Some(action) = shown.as_ref().and_then(|s| s.actions.get(&click.id.0)) {
                    perform(action, &socket, &rt);
                }
            }
            Event::UserEvent(Wake::Quit) => *control_flow = ControlFlow::Exit,
            _ => {}
        }
    });
    failed.map_or(Ok(()), Err)
}
