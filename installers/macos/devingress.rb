# Homebrew formula: `brew install --HEAD ./installers/macos/devingress.rb`
# builds devingress (with its tray icon) from the main branch;
# `brew services start devingress` starts it at login (or use install.sh).
# `brew uninstall devingress` removes it. No release is published yet, so
# there is no stable url/sha256 here.
class Devingress < Formula
  desc "Every Ingress of your local Kubernetes cluster on its real host name"
  homepage "https://github.com/devingress/devingress"
  license "Apache-2.0"
  head "https://github.com/devingress/devingress.git", branch: "main"

  depends_on "rust" => :build

  def install
    system "cargo", "install", "--locked", "--features", "tray", *std_cargo_args
  end

  service do
    run [opt_bin/"devingress", "up"]
    keep_alive successful_exit: false
    log_path var/"log/devingress.log"
    error_log_path var/"log/devingress.log"
  end

  def caveats
    <<~EOS
      Once, for resolver files and trusted certificates:
        devingress setup && devingress trust
    EOS
  end

  test do
    assert_match "devingress", shell_output("#{bin}/devingress --version")
  end
end
