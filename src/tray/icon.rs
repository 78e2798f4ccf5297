//! The tray icon on Linux: tray-icon (libayatana-appindicator, or an
//! XEmbed status icon where no StatusNotifier host runs) on GTK's event
//! loop, on the main thread. The tokio runtime beside it polls the daemon
//! over the control socket; the menu sends requests back the same way.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use anyhow::Context;
use gtk::glib;
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
                Ok(Ok(out)) => {
                    tracing::info!("tray: devingress trust: {}", String::from_utf8_lossy(&out.stdout).trim())
                }
                Ok(Err(e)) | Err(e) => tracing::warn!("tray: cannot run devingress trust: {e}"),
            });
        }
        MenuAction::UseContext(c) => send(Request::SwitchContext { context: c.clone() }),
        MenuAction::Pause => send(Request::Pause),
        MenuAction::Resume => send(Request::Resume),
        MenuAction::Quit => send(Request::Down),
    }
}

/// Shows the tray icon until `done` is set (the daemon stopped). Runs
/// GTK's loop on this thread, which must be the main thread.
pub fn run(socket: PathBuf, done: Arc<AtomicBool>, rt: tokio::runtime::Handle) -> anyhow::Result<()> {
    gtk::init().context("cannot start GTK")?;
    let icons = Icons::load()?;
    let (tx, rx) = std::sync::mpsc::channel::<Option<Status>>();
    {
        let socket = socket.clone();
        rt.spawn(async move {
            loop {
                let status = client::status(&socket).await.ok();
                if tx.send(status).is_err() {
                    return;
                }
                tokio::time::sleep(POLL).await;
            }
        });
    }
    let entries = model::menu(None);
    let (menu, mut actions) = build(&entries)?;
    let tray: TrayIcon = TrayIconBuilder::new()
        .with_id("devingress")
        .with_icon(icons.stopped.clone())
        .with_tooltip(model::tooltip(None))
        .with_title("devingress")
        .with_menu(Box::new(menu))
        .build()
        .context("cannot create the tray icon")?;
    tracing::info!("showing the tray icon");
    let mut shown_entries = entries;
    let mut shown_state = State::Stopped;
    glib::timeout_add_local(Duration::from_millis(200), move || {
        while let Ok(status) = rx.try_recv() {
            let state = model::icon_state(status.as_ref());
            if state != shown_state {
                let _ = tray.set_icon(Some(icons.for_state(state)));
                shown_state = state;
            }
            let _ = tray.set_tooltip(Some(model::tooltip(status.as_ref())));
            let entries = model::menu(status.as_ref());
            if entries != shown_entries {
                match build(&entries) {
                    Ok((menu, a)) => {
                        tray.set_menu(Some(Box::new(menu)));
                        actions = a;
                        shown_entries = entries;
                    }
                    Err(e) => tracing::warn!("tray: cannot build the menu: {e}"),
                }
            }
        }
        while let Ok(event) = MenuEvent::receiver().try_recv() {
            if let Some(action) = actions.get(&event.id.0) {
                perform(action, &socket, &rt);
            }
        }
        if done.load(Ordering::Relaxed) {
            gtk::main_quit();
            return glib::ControlFlow::Break;
        }
        glib::ControlFlow::Continue
    });
    gtk::main();
    Ok(())
}
